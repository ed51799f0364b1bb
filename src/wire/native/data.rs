//! The data plane's frames in the native encoding: data, keyed data and lookups (the fixed
//! header, a trace, a key, a payload), built, peeked (the slow path) and checked at the sink.

use super::*;

/// What differs between the data frames a source builds: kind, addresses (a keyed frame's
/// `sink` is its key's width), time.
pub(super) struct Head {
    pub(super) kind: u8,
    pub(super) source: NodeId,
    pub(super) sink: NodeId,
    pub(super) sent: SendStamp,
}

/// Appends a data frame (keyed when `key` is not empty) with an empty trace; returns its
/// length.
#[inline(always)]
pub(super) fn append_frame(
    out: &mut Vec<u8>,
    head: Head,
    key: &[u8],
    shape: DataShape,
    payload: &[u8],
    payload_crc: u32,
) -> usize {
    debug_assert_eq!(payload.len(), 4 + shape.extra_payload_bytes);
    debug_assert_eq!(payload_crc, crc32(payload));
    debug_assert!(key.is_empty() || head.sink as usize == key.len());
    let trace_bytes = shape.slot_bytes * shape.trace_slots;
    let total = DATA_HEADER_BYTES + trace_bytes + key.len() + payload.len();
    let header = DataHeader {
        len: U32::new((total - PREFIX_BYTES) as u32),
        kind: head.kind,
        trace_slots: shape.trace_slots as u8,
        hop_count: 0,
        flags: shape.run_tag << RUN_TAG_SHIFT | slot_width_flags(shape.slot_bytes),
        source: U32::new(head.source),
        sink: U32::new(head.sink),
        crc32: U32::new(payload_crc),
        send_time_us: U32::new(head.sent.0),
    };
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + trace_bytes, 0);
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    total
}

/// The sink's checks of a data frame (keyed or not) whose header and payload `locate` finds.
#[inline(always)]
pub(super) fn check_payload<'a>(
    frame: &DataFrame<'a, Native>,
    shape: DataShape,
    locate: impl FnOnce(&DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]),
) -> Result<Delivered, Corruption> {
    let slots = frame.trace_slots();
    if slots != shape.trace_slots || frame.slot_bytes() != shape.slot_bytes {
        return Err(other_trace(frame, shape));
    }
    let (header, payload) = locate(frame);
    let detoured = header.flags & FLAG_DETOURED != 0;
    if frame.overflowed() && !detoured {
        return Err(Corruption::TraceOverflow { slots });
    }
    // The payload size is the source's choice for its run (a sink may hear of the run
    // later than the source): it is the rest of the frame; it must hold the value.
    let Some(value) = payload.first_chunk::<4>() else {
        return Err(Corruption::Header(format!(
            "payload of {} bytes in a frame with {} bytes after the header",
            payload.len(),
            frame.bytes().len() - DATA_HEADER_BYTES
        )));
    };
    let computed = crc32(payload);
    if computed != header.crc32.get() {
        return Err(Corruption::Crc {
            declared: header.crc32.get(),
            computed,
        });
    }
    Ok(Delivered {
        source: frame.source(),
        value: i32::from_le_bytes(*value),
        sent: Some(SendStamp(header.send_time_us.get())),
        relays: frame.relays(),
        detoured,
    })
}

/// A frame whose trace is not its overlay's: other slots, or slots of another width.
#[cold]
#[inline(never)]
fn other_trace(frame: &DataFrame<'_, Native>, shape: DataShape) -> Corruption {
    Corruption::Header(format!(
        "{} trace slots of {} bytes, this overlay uses {} of {}",
        frame.trace_slots(),
        frame.slot_bytes(),
        shape.trace_slots,
        shape.slot_bytes
    ))
}

/// The header and the payload of a frame `peek` accepted as data: the view proves the header
/// is there and the payload follows the trace slots.
#[inline]
pub(super) fn header_and_payload<'a>(frame: &DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]) {
    let bytes = frame.bytes();
    let (head, rest) = bytes.split_at(DATA_HEADER_BYTES);
    let header = DataHeader::ref_from_bytes(head).expect("peek checked the header's length");
    (header, &rest[frame.slot_bytes() * frame.trace_slots()..])
}

/// The header and the payload of any frame `peek` accepted with a data header (keyed or
/// not): the payload is the frame's tail, after the trace and, in a keyed frame or a lookup,
/// the key (as wide as its header's `sink` says).
pub(super) fn header_and_tail<'a>(frame: &DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]) {
    let (head, rest) = frame.bytes().split_at(DATA_HEADER_BYTES);
    let header = DataHeader::ref_from_bytes(head).expect("peek checked the header's length");
    let key_bytes = match header.kind {
        kind::KEYED_DATA | kind::LOOKUP => header.sink.get() as usize,
        _ => 0,
    };
    (
        header,
        &rest[frame.slot_bytes() * frame.trace_slots() + key_bytes..],
    )
}

/// [`Codec::peek`] for everything but a well-formed data frame.
#[cold]
#[inline(never)]
pub(super) fn peek_slow(frame: &[u8]) -> Result<Peek<'_, Native>, WireError> {
    match frame.get(PREFIX_BYTES) {
        Some(&kind::DATA) => {
            let (header, rest) =
                DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
                    what: "data header",
                })?;
            Err(WireError::BadField {
                what: "data header",
                detail: format!(
                    "{} trace slots of {}, {} hops in {} bytes (at most {TRACE_SLOTS_MAX} slots \
                     of 1, 2 or 4 bytes, hops at most the slots, the slots and a 4-byte value \
                     within the frame)",
                    header.trace_slots,
                    width_said(header.flags),
                    header.hop_count,
                    rest.len()
                ),
            })
        }
        Some(&kind::KEYED_DATA) => peek_keyed(frame, 0).map(Peek::Keyed),
        Some(&kind::LOOKUP) => peek_keyed(frame, 4).map(Peek::Lookup),
        Some(&kind::LOOKUP_REPLY) => peek_reply(frame),
        Some(&kind::ACK) => {
            let ack = AckFrame::ref_from_bytes(frame).map_err(|_| WireError::BadField {
                what: "ack frame",
                detail: format!("{} bytes (must be {ACK_FRAME_BYTES})", frame.len()),
            })?;
            Ok(Peek::Ack(Ack::checked(ack)))
        }
        Some(&code)
            if (kind::REGISTER..=kind::SUMMARY).contains(&code)
                || (kind::HELLO..=kind::REFUSED).contains(&code)
                || (kind::LOOKUP_REQUEST..=kind::MANIFEST_MORE).contains(&code)
                || (kind::MEMBERSHIP..=kind::MEMBERSHIP_ACK).contains(&code) =>
        {
            Ok(Peek::Control)
        }
        Some(&code) => Err(WireError::UnknownType(code)),
        None => Err(WireError::Truncated { what: "frame" }),
    }
}

/// The width bits of `flags` for an error message.
fn width_said(flags: u8) -> String {
    match slot_bytes_of(flags) {
        0 => format!(
            "no width (width bits {})",
            (flags & SLOT_WIDTH_MASK) >> SLOT_WIDTH_SHIFT
        ),
        bytes => format!("{bytes} bytes"),
    }
}

/// [`Codec::peek`] for a keyed data frame or a lookup (its payload exactly `payload` bytes,
/// or any with 0): the key's width (the header's `sink` field) is 1 to [`ID_BYTES`] bytes,
/// and the trace and the key lie within the frame, the payload being the rest.
pub(super) fn peek_keyed(frame: &[u8], payload: usize) -> Result<DataFrame<'_, Native>, WireError> {
    let (header, rest) = DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
        what: "keyed data header",
    })?;
    let slots = usize::from(header.trace_slots);
    let width = slot_bytes_of(header.flags);
    let key_bytes = header.sink.get() as usize;
    let payload_bytes = rest
        .len()
        .checked_sub(width * slots)
        .and_then(|left| left.checked_sub(key_bytes));
    match payload_bytes {
        Some(bytes)
            if slots <= TRACE_SLOTS_MAX
                && width != 0
                && usize::from(header.hop_count) <= slots
                && (1..=ID_BYTES).contains(&key_bytes)
                && (payload == 0 || bytes == payload) =>
        {
            Ok(DataFrame::checked(
                frame,
                0,
                header.source.get(),
                (
                    u16::from(header.hop_count),
                    u16::from(header.trace_slots),
                    width as u8,
                ),
                header.flags & FLAG_TRACE_OVERFLOW != 0,
            ))
        }
        _ => Err(WireError::BadField {
            what: "keyed data header",
            detail: format!(
                "{} trace slots of {}, {} hops and a key of {} bytes (1 to {ID_BYTES}) in {} \
                 bytes{}",
                header.trace_slots,
                width_said(header.flags),
                header.hop_count,
                header.sink.get(),
                rest.len(),
                if payload == 0 {
                    String::new()
                } else {
                    format!(" (a payload of {payload} bytes)")
                }
            ),
        }),
    }
}

/// [`Codec::peek`] for a lookup reply: a data header whose trace and payload fill the frame,
/// the payload a lookup number, a port and an IPv4 or IPv6 address.
pub(super) fn peek_reply(frame: &[u8]) -> Result<Peek<'_, Native>, WireError> {
    let (header, rest) = DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
        what: "lookup reply header",
    })?;
    let slots = usize::from(header.trace_slots);
    let width = slot_bytes_of(header.flags);
    let payload = rest.len().checked_sub(width * slots);
    if slots <= TRACE_SLOTS_MAX
        && width != 0
        && usize::from(header.hop_count) <= slots
        && matches!(payload, Some(10 | 22))
    // number, port, IPv4 or IPv6
    {
        return Ok(Peek::LookupReply(DataFrame::checked(
            frame,
            header.sink.get(),
            header.source.get(),
            (
                u16::from(header.hop_count),
                u16::from(header.trace_slots),
                width as u8,
            ),
            header.flags & FLAG_TRACE_OVERFLOW != 0,
        )));
    }
    Err(WireError::BadField {
        what: "lookup reply",
        detail: format!(
            "{} trace slots of {}, {} hops leave no payload of 10 or 22 bytes in {} bytes",
            header.trace_slots,
            width_said(header.flags),
            header.hop_count,
            rest.len()
        ),
    })
}

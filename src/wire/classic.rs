//! The classic encoding (docs/PROTOCOL.md, "Classic encoding"), byte for byte: Java
//! `DataOutputStream` style, big-endian, a 4-byte big-endian length before each message, the
//! message's first byte its type (codes 2..=12). docs/PROTOCOL.md has the tables next to the
//! native ones.
//!
//! What the format does not have, and how this codec fits the shared [`Control`] messages:
//! - No acks (no flow-control window), no CRC (the run's sums are the check), no send time.
//! - A data packet's trace is a variable list of i32 relay IDs: a relay appends its ID, so the
//!   frame grows by 4 bytes on each hop (the copy's length prefix and `trace_len` are patched).
//! - A summary request is always final (the node resets after answering): decoding gives
//!   `reset = true`, and a progress poll cannot be encoded ([`Codec::PROGRESS_POLLS`] is false).
//! - Task initiate carries only the packet count: decoding gives run 0 and no extra payload;
//!   extra payload cannot be encoded, the run number is not sent.
//! - The manifest has no trace capacity and no window: decoding gives 0 for both (no window;
//!   the trace capacity does not apply to variable traces); encoding leaves them out.
//! - A traffic summary has no corrupted or dropped counts: decoding gives 0.
//!
//! Tolerant where the reference is loose: any negative status means failure, a string's
//! length byte is read unsigned. Strict where a field is really wrong: a port outside
//! 0..=65535, a negative ID or count, an address length other than 4 or 16, a truncated field
//! or stray bytes after the last one are errors (the connection is closed, the reason logged).
//! Every count is checked against the bytes left before anything is allocated.

use std::net::SocketAddr;

use super::reader::{Reader, put_ip, put_string};
use super::{
    Codec, Control, Corruption, Counters, DataFrame, DataShape, Delivered, Manifest, ManifestEntry,
    NodeId, Peek, Refusal, Status, Targets, WireError,
};
use crate::limits::FRAME_BYTES_MAX;

/// Message type codes (docs/PROTOCOL.md, "Classic encoding").
pub mod kind {
    pub const REGISTER: u8 = 2;
    pub const REGISTER_STATUS: u8 = 3;
    pub const DEREGISTER: u8 = 4;
    pub const DEREGISTER_STATUS: u8 = 5;
    pub const MANIFEST: u8 = 6;
    pub const SETUP_STATUS: u8 = 7;
    pub const TASK_INITIATE: u8 = 8;
    pub const DATA: u8 = 9;
    pub const TASK_FINISHED: u8 = 10;
    pub const SUMMARY_REQUEST: u8 = 11;
    pub const SUMMARY: u8 = 12;
}

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Bytes of a data frame before its trace: prefix, type, sink, source, payload, trace_len.
pub const DATA_HEADER_BYTES: usize = PREFIX_BYTES + 1 + 4 * 4;

/// Offsets in a data frame.
const SINK_AT: usize = PREFIX_BYTES + 1;
const SOURCE_AT: usize = PREFIX_BYTES + 5;
const VALUE_AT: usize = PREFIX_BYTES + 9;
const TRACE_LEN_AT: usize = DATA_HEADER_BYTES - 4;

/// The largest trace a data frame may arrive with: one more relay must still fit a frame.
pub const TRACE_LEN_MAX: usize = (FRAME_BYTES_MAX - DATA_HEADER_BYTES) / 4 - 1;
const _: () = assert!(TRACE_LEN_MAX <= u16::MAX as usize);

/// The classic encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classic;

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    be_u32(bytes, at) as i32
}

fn unencodable(what: impl Into<String>) -> Result<(), WireError> {
    Err(WireError::Unencodable {
        codec: Classic::NAME,
        what: what.into(),
    })
}

/// A node ID the format's i32 can carry.
fn id_fits(id: NodeId, what: &str) -> Result<(), WireError> {
    if i32::try_from(id).is_ok() {
        Ok(())
    } else {
        unencodable(format!("{what} {id} (IDs are i32)"))
    }
}

impl Codec for Classic {
    const NAME: &'static str = "classic";
    const HAS_ACKS: bool = false;
    const PROGRESS_POLLS: bool = false;
    const LOOSE_PORTS: bool = true;
    const HAS_STATS: bool = false;
    const HELLO: bool = false;
    const DETOURS: bool = false;
    const TRACE_AT: usize = DATA_HEADER_BYTES;
    /// IDs are Java ints.
    const ID_MAX: NodeId = i32::MAX as NodeId;

    /// Always 4 bytes (`peek` makes every classic view with 4-byte slots).
    fn read_slot(slot: &[u8]) -> NodeId {
        NodeId::from_be_bytes(slot.try_into().expect("classic trace IDs are 4 bytes"))
    }

    fn encodable(message: &Control) -> Result<(), WireError> {
        match message {
            Control::Register { .. }
            | Control::SetupStatus {
                status: Status::Failed,
                ..
            }
            | Control::RegisterStatus {
                status: Status::Failed,
                ..
            }
            | Control::DeregisterStatus {
                status: Status::Failed,
                ..
            } => Ok(()),
            Control::RegisterStatus {
                status: Status::Ok(id),
                ..
            }
            | Control::DeregisterStatus {
                status: Status::Ok(id),
                ..
            }
            | Control::SetupStatus {
                status: Status::Ok(id),
                ..
            } => id_fits(*id, "status ID"),
            Control::Deregister { id, .. } | Control::TaskFinished { id, .. } => {
                id_fits(*id, "node ID")
            }
            Control::Summary { id, .. } => id_fits(*id, "node ID"),
            Control::Hello { .. } | Control::Challenge { .. } | Control::Response { .. } => {
                unencodable(
                    "authentication (the classic format has no handshake; --secret-file is \
                     native only)"
                        .to_string(),
                )
            }
            Control::Refused(_) => {
                unencodable("a refusal (the classic format has none)".to_string())
            }
            Control::Membership(_) | Control::MembershipAck { .. } => unencodable(
                "a membership change (the reference's overlays stay as set up: a join or a \
                 leave needs setup-overlay again)"
                    .to_string(),
            ),
            Control::Manifest(manifest) => {
                if manifest.chord.is_some() {
                    return unencodable(
                        "Chord fingers (classic nodes route by the position rule's tables)"
                            .to_string(),
                    );
                }
                if manifest.entries.len() > usize::from(u8::MAX) {
                    return unencodable(format!(
                        "a table of {} entries (the count is one byte)",
                        manifest.entries.len()
                    ));
                }
                if manifest.all_ids.len() > usize::from(u8::MAX) {
                    return unencodable(format!(
                        "an overlay of {} nodes (the manifest's ID count is one byte: at most \
                         255)",
                        manifest.all_ids.len()
                    ));
                }
                manifest
                    .entries
                    .iter()
                    .map(|e| e.id)
                    .chain(manifest.all_ids.iter().copied())
                    .try_for_each(|id| id_fits(id, "node ID"))
            }
            Control::TaskInitiate {
                packets,
                extra_payload_bytes,
                rate_per_s,
                targets,
                ..
            } => {
                if let Targets::Keys { .. } = targets {
                    unencodable("a run addressed to keys (classic nodes route by node ID)")
                } else if *rate_per_s != 0 {
                    unencodable(format!(
                        "a rate of {rate_per_s} packets/s (classic nodes send as fast as they can)"
                    ))
                } else if *extra_payload_bytes != 0 {
                    unencodable(format!(
                        "{extra_payload_bytes} bytes of extra payload (a packet carries one i32)"
                    ))
                } else if i32::try_from(*packets).is_err() {
                    unencodable(format!("{packets} packets (the count is an i32)"))
                } else {
                    Ok(())
                }
            }
            Control::Lookup { .. } | Control::LookupResult { .. } => {
                unencodable("a lookup (classic nodes know no keys)")
            }
            Control::ManifestStart { .. } | Control::ManifestMore(_) => {
                unencodable("a manifest in several frames (a classic manifest is one frame)")
            }
            Control::SummaryRequest { reset: true, .. } => Ok(()),
            Control::SummaryRequest { reset: false, .. } => {
                unencodable("a progress poll (every summary request resets the counters)")
            }
        }
    }

    fn farewell_to_the_other_format() -> Vec<u8> {
        let mut out = Vec::new();
        super::native::Native::encode_control(&Control::Refused(Refusal::ClassicWire), &mut out);
        out
    }

    fn frame_len(bytes: &[u8]) -> Result<Option<usize>, WireError> {
        let Some(prefix) = bytes.first_chunk::<PREFIX_BYTES>() else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes(*prefix) as usize;
        if declared == 0 || declared > FRAME_BYTES_MAX - PREFIX_BYTES {
            // A valid length in the native format's byte order: a native peer, not garbage.
            let swapped = u32::from_le_bytes(*prefix) as usize;
            if swapped != 0 && swapped <= FRAME_BYTES_MAX - PREFIX_BYTES {
                return Err(WireError::OtherFormat {
                    ours: Self::NAME,
                    theirs: super::native::Native::NAME,
                    declared: declared as u64,
                });
            }
            return Err(WireError::FrameLength {
                declared: declared as u64,
                max: FRAME_BYTES_MAX - PREFIX_BYTES,
            });
        }
        let total = PREFIX_BYTES + declared;
        Ok((bytes.len() >= total).then_some(total))
    }

    fn peek(frame: &[u8]) -> Result<Peek<'_, Self>, WireError> {
        match frame.get(PREFIX_BYTES) {
            Some(&kind::DATA) => {
                if frame.len() < DATA_HEADER_BYTES {
                    return Err(WireError::Truncated { what: "data frame" });
                }
                let declared = be_u32(frame, 0) as usize;
                let trace_len = be_i32(frame, TRACE_LEN_AT);
                let relays = usize::try_from(trace_len)
                    .ok()
                    .filter(|&n| n <= TRACE_LEN_MAX)
                    .filter(|&n| {
                        frame.len() == DATA_HEADER_BYTES + 4 * n
                            && declared + PREFIX_BYTES == frame.len()
                    });
                let Some(relays) = relays else {
                    return Err(WireError::BadField {
                        what: "data frame",
                        detail: format!(
                            "trace_len {trace_len} does not fill {} bytes (at most \
                             {TRACE_LEN_MAX} relays)",
                            frame.len()
                        ),
                    });
                };
                let sink = be_i32(frame, SINK_AT);
                let Ok(sink) = NodeId::try_from(sink) else {
                    return Err(WireError::BadField {
                        what: "data sink",
                        detail: format!("{sink} (IDs are not negative)"),
                    });
                };
                // The trace grows with each relay: it has exactly as many slots as relays.
                let relays = relays as u16;
                Ok(Peek::Data(DataFrame::checked(
                    frame,
                    sink,
                    be_u32(frame, SOURCE_AT),
                    (relays, relays, 4),
                    false,
                )))
            }
            Some(&code) if (kind::REGISTER..=kind::SUMMARY).contains(&code) => Ok(Peek::Control),
            Some(&code) => Err(WireError::UnknownType(code)),
            None => Err(WireError::Truncated { what: "frame" }),
        }
    }

    fn append_relayed(frame: &DataFrame<'_, Self>, self_id: NodeId, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(frame.bytes());
        out.extend_from_slice(&self_id.to_be_bytes());
        let copy = &mut out[start..];
        // `peek` bounded the trace by `TRACE_LEN_MAX`: one more relay still fits a frame.
        let declared = (copy.len() - PREFIX_BYTES) as u32;
        let trace_len = frame.relays() as u32 + 1;
        copy[..PREFIX_BYTES].copy_from_slice(&declared.to_be_bytes());
        copy[TRACE_LEN_AT..TRACE_LEN_AT + 4].copy_from_slice(&trace_len.to_be_bytes());
    }

    fn append_data_with_crc(
        out: &mut Vec<u8>,
        source: NodeId,
        sink: NodeId,
        shape: DataShape,
        _send_time_ns: u64,
        payload: &[u8],
        _payload_crc: u32,
    ) -> usize {
        debug_assert_eq!(
            shape.extra_payload_bytes, 0,
            "classic packets carry one i32"
        );
        let value = payload
            .first_chunk::<4>()
            .map_or(0, |v| i32::from_le_bytes(*v));
        let len = (DATA_HEADER_BYTES - PREFIX_BYTES) as u32;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(kind::DATA);
        out.extend_from_slice(&sink.to_be_bytes());
        out.extend_from_slice(&source.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        DATA_HEADER_BYTES
    }

    fn set_originated(
        frame: &mut [u8],
        _shape: DataShape,
        sink: NodeId,
        value: [u8; 4],
        _payload_crc: u32,
    ) {
        frame[SINK_AT..SINK_AT + 4].copy_from_slice(&sink.to_be_bytes());
        let value = i32::from_le_bytes(value);
        frame[VALUE_AT..VALUE_AT + 4].copy_from_slice(&value.to_be_bytes());
    }

    fn check_delivered(
        frame: &DataFrame<'_, Self>,
        _shape: DataShape,
    ) -> Result<Delivered, Corruption> {
        let bytes = frame.bytes();
        let source = be_i32(bytes, SOURCE_AT);
        let source = NodeId::try_from(source)
            .map_err(|_| Corruption::Header(format!("negative source {source}")))?;
        Ok(Delivered {
            source,
            value: be_i32(bytes, VALUE_AT),
            sent: None,
            relays: frame.relays(),
            detoured: false,
        })
    }

    fn append_ack(_out: &mut Vec<u8>, _source: NodeId, _sink: NodeId, _epoch: u32, _acked: u64) {
        debug_assert!(false, "the classic format has no acks (HAS_ACKS is false)");
    }

    fn encode_control(message: &Control, out: &mut Vec<u8>) {
        if let Err(error) = Self::encodable(message) {
            debug_assert!(false, "encode_control of an unencodable message: {error}");
            tracing::error!("not sent: {error}");
            return;
        }
        let start = out.len();
        out.extend_from_slice(&[0; PREFIX_BYTES]);
        encode_body(message, out);
        let declared = (out.len() - start - PREFIX_BYTES) as u32;
        out[start..start + PREFIX_BYTES].copy_from_slice(&declared.to_be_bytes());
    }

    fn decode_control(frame: &[u8]) -> Result<Control, WireError> {
        let body = frame
            .get(PREFIX_BYTES..)
            .ok_or(WireError::Truncated { what: "frame" })?;
        decode_body(body)
    }
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}
fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_be_bytes());
}
/// IDs were checked by `encodable`.
fn put_id(out: &mut Vec<u8>, id: NodeId) {
    put_i32(out, id as i32);
}
/// Counts above i32 cannot occur in a classic run (the packets per node are an i32); they are
/// sent saturated rather than wrapped.
fn put_count(out: &mut Vec<u8>, count: u64) {
    put_i32(out, i32::try_from(count).unwrap_or(i32::MAX));
}
fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    put_ip(out, addr.ip());
    put_i32(out, i32::from(addr.port()));
}
fn put_status(out: &mut Vec<u8>, status: Status, info: &str) {
    put_i32(
        out,
        match status {
            Status::Ok(id) => id as i32,
            Status::Failed => -1,
        },
    );
    put_string(out, info);
}

fn encode_body(message: &Control, out: &mut Vec<u8>) {
    match message {
        // The classic format has no group: the registry places the node at random.
        Control::Register { addr, .. } => {
            out.push(kind::REGISTER);
            put_addr(out, addr);
        }
        Control::RegisterStatus { status, info } => {
            out.push(kind::REGISTER_STATUS);
            put_status(out, *status, info);
        }
        Control::Deregister { addr, id } => {
            out.push(kind::DEREGISTER);
            put_addr(out, addr);
            put_id(out, *id);
        }
        Control::DeregisterStatus { status, info } => {
            out.push(kind::DEREGISTER_STATUS);
            put_status(out, *status, info);
        }
        Control::Manifest(manifest) => {
            out.push(kind::MANIFEST);
            out.push(manifest.entries.len() as u8);
            for entry in &manifest.entries {
                put_id(out, entry.id);
                put_addr(out, &entry.addr);
            }
            out.push(manifest.all_ids.len() as u8);
            for id in manifest.all_ids.iter() {
                put_id(out, *id);
            }
        }
        Control::SetupStatus { status, info } => {
            out.push(kind::SETUP_STATUS);
            put_status(out, *status, info);
        }
        Control::TaskInitiate { packets, .. } => {
            out.push(kind::TASK_INITIATE);
            put_count(out, *packets);
        }
        Control::TaskFinished { addr, id } => {
            out.push(kind::TASK_FINISHED);
            put_addr(out, addr);
            put_id(out, *id);
        }
        Control::SummaryRequest { .. } => out.push(kind::SUMMARY_REQUEST),
        // Refused by `encodable`; nothing of it goes on the wire.
        Control::Hello { .. }
        | Control::Challenge { .. }
        | Control::Response { .. }
        | Control::Refused(_)
        | Control::Lookup { .. }
        | Control::LookupResult { .. }
        | Control::ManifestStart { .. }
        | Control::ManifestMore(_)
        | Control::Membership(_)
        | Control::MembershipAck { .. } => {}
        Control::Summary { id, counters, .. } => {
            out.push(kind::SUMMARY);
            put_id(out, *id);
            put_count(out, counters.sent);
            put_count(out, counters.relayed);
            put_i64(out, counters.sum_sent);
            put_count(out, counters.received);
            put_i64(out, counters.sum_received);
        }
    }
}

impl Reader<'_> {
    fn i32_be(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64_be(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// An i32 that must not be negative (an ID or a count).
    fn natural_be(&mut self, what: &'static str) -> Result<u32, WireError> {
        let value = self.i32_be()?;
        u32::try_from(value).map_err(|_| WireError::BadField {
            what,
            detail: format!("{value} (must not be negative)"),
        })
    }
    fn addr_be(&mut self) -> Result<SocketAddr, WireError> {
        let ip = self.ip()?;
        let port = self.i32_be()?;
        let port = u16::try_from(port).map_err(|_| WireError::BadField {
            what: "port",
            detail: format!("{port} (must be 0..=65535)"),
        })?;
        Ok(SocketAddr::new(ip, port))
    }
    /// Any negative status is a failure (the reference sends -1; others may not).
    fn status_be(&mut self) -> Result<(Status, String), WireError> {
        let raw = self.i32_be()?;
        let status = u32::try_from(raw).map_or(Status::Failed, Status::Ok);
        Ok((status, self.string()?))
    }
}

fn decode_body(body: &[u8]) -> Result<Control, WireError> {
    let mut reader = Reader::new(body, "control message");
    let code = reader.u8()?;
    let message = match code {
        kind::REGISTER => Control::Register {
            addr: reader.addr_be()?,
            group: None,
        },
        kind::REGISTER_STATUS => {
            let (status, info) = reader.status_be()?;
            Control::RegisterStatus { status, info }
        }
        kind::DEREGISTER => Control::Deregister {
            addr: reader.addr_be()?,
            id: reader.natural_be("node ID")?,
        },
        kind::DEREGISTER_STATUS => {
            let (status, info) = reader.status_be()?;
            Control::DeregisterStatus { status, info }
        }
        kind::MANIFEST => {
            let count = usize::from(reader.u8()?);
            // Each entry takes at least 13 bytes (i32, length byte, 4-byte IP, i32).
            if count > reader.remaining() / 13 {
                return Err(WireError::Truncated {
                    what: "manifest table",
                });
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let id = reader.natural_be("table entry ID")?;
                entries.push(ManifestEntry {
                    id,
                    addr: reader.addr_be()?,
                });
            }
            let id_count = usize::from(reader.u8()?);
            if id_count > reader.remaining() / 4 {
                return Err(WireError::Truncated {
                    what: "manifest ID list",
                });
            }
            let mut all_ids = Vec::with_capacity(id_count);
            for _ in 0..id_count {
                all_ids.push(reader.natural_be("node ID")?);
            }
            Control::Manifest(Manifest {
                entries,
                all_ids: all_ids.into(),
                chord: None,
                trace_slots: 0,
                trace_slot_bytes: 4,
                window_bytes: 0,
                backups: Vec::new(),
                epoch: 0,
            })
        }
        kind::SETUP_STATUS => {
            let (status, info) = reader.status_be()?;
            Control::SetupStatus { status, info }
        }
        kind::TASK_INITIATE => Control::TaskInitiate {
            run: 0,
            packets: u64::from(reader.natural_be("packet count")?),
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets: Targets::Nodes,
        },
        kind::TASK_FINISHED => Control::TaskFinished {
            addr: reader.addr_be()?,
            id: reader.natural_be("node ID")?,
        },
        kind::SUMMARY_REQUEST => Control::SummaryRequest {
            reset: true,
            links: false,
        },
        kind::SUMMARY => {
            let id = reader.natural_be("node ID")?;
            let sent = reader.natural_be("packets sent")?;
            let relayed = reader.natural_be("packets relayed")?;
            let sum_sent = reader.i64_be()?;
            let received = reader.natural_be("packets received")?;
            let sum_received = reader.i64_be()?;
            Control::Summary {
                id,
                reset: true,
                counters: Counters {
                    sent: sent.into(),
                    received: received.into(),
                    relayed: relayed.into(),
                    sum_sent,
                    sum_received,
                    ..Counters::default()
                },
                stats: None,
                links: Vec::new(),
            }
        }
        kind::DATA => {
            return Err(WireError::BadField {
                what: "control message",
                detail: "a data packet is not a control message".into(),
            });
        }
        other => return Err(WireError::UnknownType(other)),
    };
    reader.finish()?;
    Ok(message)
}

#[cfg(test)]
mod tests;

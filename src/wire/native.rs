//! The native encoding: little-endian, one 4-byte length prefix per frame, and a fixed 24-byte
//! header for the data plane that relays read and patch in place (docs/PROTOCOL.md has the
//! byte tables).

use std::net::SocketAddr;
use std::sync::LazyLock;

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::reader::{Reader, put_ip, put_string};
use super::{
    Ack, Change, ChordIds, Codec, Control, Corruption, Counters, DataFrame, DataShape, Delivered,
    GroupTag, LinkCount, LookupAnswer, Manifest, ManifestEntry, Members, MembershipChange,
    NewTable, NodeId, PayloadCrc, Peek, Refusal, SendStamp, Status, Targets, WireError,
};
use crate::chord::id::ID_BYTES;
use crate::chord::{Id, IdSpace};
use crate::limits::{
    BACKUP_ENTRIES, CHORD_ID_BITS_MAX, FRAME_BYTES_MAX, MANIFEST_MEMBERS_MAX,
    MANIFEST_MORE_HEAD_BYTES, NODES_MAX, NR_MAX, REPAIR_NODES_MAX, SUMMARY_LINKS_MAX,
    TRACE_SLOTS_MAX,
};
use crate::stats::RunStats;

mod control;
mod data;
mod membership;

use control::{decode_body, encode_body, encode_manifest_in_frames, manifest_bytes, put_frame};
use data::{Head, append_frame, check_payload, header_and_payload, header_and_tail, peek_slow};

/// Message type codes. Control codes match the classic format's numbering.
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
    pub const ACK: u8 = 13;
    pub const HELLO: u8 = 14;
    pub const CHALLENGE: u8 = 15;
    pub const RESPONSE: u8 = 16;
    pub const REFUSED: u8 = 17;
    pub const KEYED_DATA: u8 = 18;
    pub const LOOKUP: u8 = 19;
    pub const LOOKUP_REPLY: u8 = 20;
    pub const LOOKUP_REQUEST: u8 = 21;
    pub const LOOKUP_RESULT: u8 = 22;
    pub const MANIFEST_MORE: u8 = 23;
    pub const MEMBERSHIP: u8 = 24;
    pub const MEMBERSHIP_ACK: u8 = 25;
}

/// What changed, in a membership change (`kind::MEMBERSHIP`).
pub mod change_code {
    pub const JOIN: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const LEAVE: u8 = 3;
    pub const DRAIN: u8 = 4;
    pub const GONE: u8 = 5;
    pub const CLOSE: u8 = 6;
    pub const COMMIT: u8 = 7;
    pub const LOST: u8 = 8;
    pub const REPAIR: u8 = 9;
}

/// Reasons of a refusal (`kind::REFUSED`).
pub mod refusal_code {
    pub const BUSY: u8 = 1;
    pub const SECRET_REQUIRED: u8 = 2;
    pub const NO_SECRET: u8 = 3;
    pub const WRONG_SECRET: u8 = 4;
    pub const CLASSIC_WIRE: u8 = 5;
    /// Followed by the refuser's protocol version (u16).
    pub const VERSION: u8 = 6;
}

/// The native protocol's version, in every hello: 4 since a registration may name its node's
/// group (`GroupTag`: the registry places a process's nodes apart on the ring), 3 since trace slots as wide as the ID space
/// (the manifest's slot width, the data frame's width bits; issue 16), 2 since the 24-byte
/// data header. Version 1, the builds before, sent hellos without one; an acceptor reads
/// those as 1 and refuses them, as any other version ([`Refusal::Version`]).
pub const PROTOCOL_VERSION: u16 = 4;
/// The version of a hello that names none.
pub const PROTOCOL_VERSION_UNNAMED: u16 = 1;

/// `DataHeader::flags` bit: a relay found no free trace slot (the sink counts it corrupted,
/// unless the packet was routed around a dead link: [`FLAG_DETOURED`]).
pub const FLAG_TRACE_OVERFLOW: u8 = 1;
/// `DataHeader::flags` bits 4..=7: the run tag ([`DataShape::run_tag`]), written by the
/// source and read only by the sink; relays copy it unchanged.
pub const RUN_TAG_SHIFT: u32 = 4;
const _: () = assert!(crate::wire::RUN_TAGS == 1 << (8 - RUN_TAG_SHIFT));
const _: () = assert!((FLAG_TRACE_OVERFLOW as u32) < 1 << RUN_TAG_SHIFT);
/// `DataHeader::flags` bit: a node sent the packet on a link other than its table's rule
/// picks, to route around a dead one (`chord::churn::detour`): the sink checks its trace by
/// the structural rule only (every relay a member, strictly clockwise progress), and checks
/// the relays recorded when the detour made the trace overflow.
pub const FLAG_DETOURED: u8 = 2;
const _: () = assert!((FLAG_DETOURED as u32) < 1 << RUN_TAG_SHIFT);
/// `DataHeader::flags` bits 2..=3: the width of the trace's slots, written by the source
/// from its overlay's ([`DataShape::slot_bytes`]) and copied by relays: 0 = 4 bytes, 1 = 1
/// byte, 2 = 2 bytes; 3 is no width, and `peek` refuses the frame.
pub const SLOT_WIDTH_SHIFT: u32 = 2;
pub const SLOT_WIDTH_MASK: u8 = 3 << SLOT_WIDTH_SHIFT;
const _: () = assert!(SLOT_WIDTH_MASK & (FLAG_TRACE_OVERFLOW | FLAG_DETOURED) == 0);
const _: () = assert!((SLOT_WIDTH_MASK as u32) < 1 << RUN_TAG_SHIFT);
/// Slot bytes by the width bits' value (0 for the value that is no width).
const SLOT_BYTES_BY_CODE: [u8; 4] = [4, 1, 2, 0];

/// The width bits of `flags`' trace slots, in bytes: 1, 2 or 4, or 0 if they name no width.
#[inline]
pub fn slot_bytes_of(flags: u8) -> usize {
    usize::from(SLOT_BYTES_BY_CODE[usize::from((flags & SLOT_WIDTH_MASK) >> SLOT_WIDTH_SHIFT)])
}

/// The width bits for slots of `slot_bytes` bytes (1, 2 or 4).
#[inline]
pub fn slot_width_flags(slot_bytes: usize) -> u8 {
    debug_assert!(matches!(slot_bytes, 1 | 2 | 4));
    let code = match slot_bytes {
        1 => 1,
        2 => 2,
        _ => 0,
    };
    code << SLOT_WIDTH_SHIFT
}

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// The most nodes a lookup's path names: the asker, a full trace of relays, the owner.
const LOOKUP_PATH_MAX: usize = TRACE_SLOTS_MAX + 2;

/// The fixed header of a data frame. The trace (`trace_slots` little-endian relay IDs of 1, 2
/// or 4 bytes each, as the flags' width bits say),
/// the key of a keyed frame, and then the payload follow it: the payload is the rest of the
/// frame, so its length is told by `len`, `trace_slots` and the key's width, not by a field.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DataHeader {
    /// Bytes after this field: header rest + trace + key + payload.
    pub len: U32,
    /// [`kind::DATA`].
    pub kind: u8,
    /// Relay slots in the trace; the same for every frame of an overlay.
    pub trace_slots: u8,
    /// Relays so far = trace slots used.
    pub hop_count: u8,
    /// [`FLAG_TRACE_OVERFLOW`], [`FLAG_DETOURED`]; bits 2..=3 the trace slots' width
    /// ([`SLOT_WIDTH_SHIFT`]); bits 4..=7 the run tag ([`RUN_TAG_SHIFT`]).
    pub flags: u8,
    /// The node that originated the packet.
    pub source: U32,
    /// The node the packet is for: the only field a relay routes on. In a keyed frame
    /// ([`kind::KEYED_DATA`]) or a lookup, which are routed by the key between the trace and
    /// the payload, the key's width in bytes instead (1..=[`ID_BYTES`]).
    pub sink: U32,
    /// CRC32 (IEEE) of the payload.
    pub crc32: U32,
    /// The source's CLOCK_MONOTONIC at sending in microseconds, modulo 2^32 ([`SendStamp`]),
    /// for latency.
    pub send_time_us: U32,
}

/// A flow-control acknowledgement, routed to `sink` like data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct AckFrame {
    /// Always 28.
    pub len: U32,
    /// [`kind::ACK`].
    pub kind: u8,
    pub reserved: [u8; 3],
    /// The sink that acknowledges.
    pub source: U32,
    /// The source whose packets are acknowledged.
    pub sink: U32,
    /// Final reports since the manifest: a late ack of an earlier run is recognised and ignored.
    pub epoch: U32,
    pub reserved2: U32,
    /// Frame bytes received from `sink` in this run, cumulative.
    pub acked_bytes: U64,
}

pub const DATA_HEADER_BYTES: usize = size_of::<DataHeader>();
/// Offsets of the header fields a relay patches in its copy.
const HOP_COUNT_AT: usize = std::mem::offset_of!(DataHeader, hop_count);
const FLAGS_AT: usize = std::mem::offset_of!(DataHeader, flags);
const SINK_AT: usize = std::mem::offset_of!(DataHeader, sink);
const CRC32_AT: usize = std::mem::offset_of!(DataHeader, crc32);
/// Offset of the key's width in a keyed frame or a lookup (the field a data frame's sink
/// takes).
const KEY_BYTES_AT: usize = SINK_AT;
pub const ACK_FRAME_BYTES: usize = size_of::<AckFrame>();
/// Bytes of one [`LinkCount`] in a summary: peer, sent, received.
const LINK_COUNT_BYTES: usize = 4 + 8 + 8;
const _: () = assert!(DATA_HEADER_BYTES == 24);
const _: () = assert!(ACK_FRAME_BYTES == 32);
/// An ack covers at least one whole data frame, the smallest of which is the header, one
/// 1-byte trace slot and the value: the relay bound's argument
/// (`limits::relay_queued_bytes_max`) scales by the ack's bytes over those.
const _: () = assert!(
    crate::limits::DATA_FRAME_BYTES_MIN
        == DATA_HEADER_BYTES + crate::limits::TRACE_CHURN_HEADROOM + 4
);
const _: () = assert!(crate::limits::ACK_BYTES == ACK_FRAME_BYTES);

/// Bytes of one data frame of `shape`.
pub fn data_frame_bytes(shape: DataShape) -> usize {
    DATA_HEADER_BYTES + shape.slot_bytes * shape.trace_slots + 4 + shape.extra_payload_bytes
}

/// The native encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Native;

impl Codec for Native {
    const NAME: &'static str = "native";
    const KEYED: bool = true;
    const TRACE_AT: usize = DATA_HEADER_BYTES;
    const ID_MAX: NodeId = NodeId::MAX;

    /// Little-endian, 1, 2 or 4 bytes.
    #[inline]
    fn read_slot(slot: &[u8]) -> NodeId {
        match *slot {
            [a] => NodeId::from(a),
            [a, b] => NodeId::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => NodeId::from_le_bytes([a, b, c, d]),
            _ => unreachable!("peek makes views of 1-, 2- or 4-byte slots only"),
        }
    }

    fn encodable(message: &Control) -> Result<(), WireError> {
        let manifest = match message {
            Control::Manifest(manifest) | Control::ManifestStart { manifest, .. } => manifest,
            _ => return Ok(()),
        };
        let too_long = |what: String| {
            Err(WireError::Unencodable {
                codec: Self::NAME,
                what,
            })
        };
        if manifest.entries.len().max(manifest.backups.len()) > usize::from(u8::MAX) {
            return too_long(format!(
                "a table of {} entries and {} backups (each count is one byte)",
                manifest.entries.len(),
                manifest.backups.len()
            ));
        }
        // A manifest goes in as many frames as its members need; a node takes at most
        // MANIFEST_MEMBERS_MAX of them (the registry never has more).
        if manifest.all_ids.len() > MANIFEST_MEMBERS_MAX {
            return too_long(format!(
                "a manifest of {} members (a node takes at most {MANIFEST_MEMBERS_MAX})",
                manifest.all_ids.len()
            ));
        }
        Ok(())
    }

    fn farewell_to_the_other_format() -> Vec<u8> {
        let mut out = Vec::new();
        super::classic::Classic::encode_control(
            &Control::RegisterStatus {
                status: Status::Failed,
                info: "the registry speaks the native wire format, not the classic one: start \
                       both sides with the same --wire"
                    .into(),
            },
            &mut out,
        );
        out
    }

    #[inline]
    fn frame_len(bytes: &[u8]) -> Result<Option<usize>, WireError> {
        let Some(prefix) = bytes.first_chunk::<PREFIX_BYTES>() else {
            return Ok(None);
        };
        let declared = u32::from_le_bytes(*prefix) as usize;
        if declared == 0 || declared > FRAME_BYTES_MAX - PREFIX_BYTES {
            return Err(frame_length_error(declared, u32::from_be_bytes(*prefix)));
        }
        let total = PREFIX_BYTES + declared;
        Ok((bytes.len() >= total).then_some(total))
    }

    #[inline]
    fn source_if_for(bytes: &[u8], sink: NodeId) -> Option<NodeId> {
        let (header, _) = DataHeader::ref_from_prefix(bytes).ok()?;
        (header.kind == kind::DATA && header.sink.get() == sink).then(|| header.source.get())
    }

    #[inline]
    fn peek(frame: &[u8]) -> Result<Peek<'_, Self>, WireError> {
        // A well-formed data frame inline; everything else out of line.
        if frame.get(PREFIX_BYTES) == Some(&kind::DATA)
            && let Ok((header, rest)) = DataHeader::ref_from_prefix(frame)
        {
            // The payload is what follows the trace: at least the 4-byte value. A width of 0
            // (the width bits' value that names none) is refused out of line.
            let slots = usize::from(header.trace_slots);
            let width = slot_bytes_of(header.flags);
            if slots <= TRACE_SLOTS_MAX
                && width != 0
                && usize::from(header.hop_count) <= slots
                && rest.len() >= width * slots + 4
            {
                return Ok(Peek::Data(DataFrame::checked(
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
        }
        peek_slow(frame)
    }

    #[inline(always)]
    fn append_relayed(frame: &DataFrame<'_, Self>, self_id: NodeId, out: &mut Vec<u8>) {
        Self::append_relayed_head(frame, self_id, frame.bytes().len(), out);
    }

    #[inline]
    fn relayed_head(frame: &DataFrame<'_, Self>) -> Option<usize> {
        // `peek` checked the trace's slots lie in the frame.
        Some(DATA_HEADER_BYTES + frame.slot_bytes() * frame.trace_slots())
    }

    #[inline(always)]
    fn append_relayed_head(
        frame: &DataFrame<'_, Self>,
        self_id: NodeId,
        head: usize,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        out.extend_from_slice(&frame.bytes()[..head]);
        let copy = &mut out[start..];
        let hop = frame.relays();
        if hop < frame.trace_slots() {
            // `hop < trace_slots <= u8::MAX`, and `peek` checked the slot lies in the frame.
            // The ID's low bytes: in an overlay whose slots are this wide, every ID fits (the
            // node checked its own at setup); a frame of another width is refused at its sink.
            copy[HOP_COUNT_AT] = hop as u8 + 1;
            let id = self_id.to_le_bytes();
            match frame.slot_bytes() {
                1 => copy[DATA_HEADER_BYTES + hop] = id[0],
                2 => copy[DATA_HEADER_BYTES + 2 * hop..][..2].copy_from_slice(&id[..2]),
                _ => copy[DATA_HEADER_BYTES + 4 * hop..][..4].copy_from_slice(&id),
            }
        } else {
            copy[FLAGS_AT] |= FLAG_TRACE_OVERFLOW;
        }
    }

    fn append_data_with_crc(
        out: &mut Vec<u8>,
        source: NodeId,
        sink: NodeId,
        shape: DataShape,
        send_time_ns: u64,
        payload: &[u8],
        payload_crc: u32,
    ) -> usize {
        let head = Head {
            kind: kind::DATA,
            source,
            sink,
            sent: SendStamp::at(send_time_ns),
        };
        append_frame(out, head, &[], shape, payload, payload_crc)
    }

    #[inline]
    fn of_run(frame: &DataFrame<'_, Self>, shape: DataShape) -> bool {
        // `peek` checked the header is there.
        frame
            .bytes()
            .get(FLAGS_AT)
            .is_none_or(|flags| flags >> RUN_TAG_SHIFT == shape.run_tag)
    }

    #[inline]
    fn set_originated(
        frame: &mut [u8],
        shape: DataShape,
        sink: NodeId,
        value: [u8; 4],
        payload_crc: u32,
    ) {
        let payload_at = DATA_HEADER_BYTES + shape.slot_bytes * shape.trace_slots;
        frame[SINK_AT..SINK_AT + 4].copy_from_slice(&sink.to_le_bytes());
        frame[CRC32_AT..CRC32_AT + 4].copy_from_slice(&payload_crc.to_le_bytes());
        frame[payload_at..payload_at + 4].copy_from_slice(&value);
    }

    #[inline]
    fn check_delivered(
        frame: &DataFrame<'_, Self>,
        shape: DataShape,
    ) -> Result<Delivered, Corruption> {
        check_payload(frame, shape, header_and_payload)
    }

    fn key<'a>(frame: &DataFrame<'a, Self>) -> &'a [u8] {
        let bytes = frame.bytes();
        let key_bytes = u32::from_le_bytes(
            bytes[KEY_BYTES_AT..KEY_BYTES_AT + 4]
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        // `peek` checked that the key lies between the trace and the payload.
        let key_at = DATA_HEADER_BYTES + frame.slot_bytes() * frame.trace_slots();
        &bytes[key_at..key_at + key_bytes]
    }

    fn append_keyed_with_crc(
        out: &mut Vec<u8>,
        source: NodeId,
        key: &[u8],
        shape: DataShape,
        send_time_ns: u64,
        payload: &[u8],
        payload_crc: u32,
    ) -> usize {
        debug_assert!((1..=ID_BYTES).contains(&key.len()));
        let head = Head {
            kind: kind::KEYED_DATA,
            source,
            sink: key.len() as NodeId,
            sent: SendStamp::at(send_time_ns),
        };
        append_frame(out, head, key, shape, payload, payload_crc)
    }

    fn check_keyed_delivered(
        frame: &DataFrame<'_, Self>,
        shape: DataShape,
    ) -> Result<Delivered, Corruption> {
        check_payload(frame, shape, header_and_tail)
    }

    fn append_lookup(
        out: &mut Vec<u8>,
        asker: NodeId,
        key: &[u8],
        shape: DataShape,
        number: u32,
        send_time_ns: u64,
    ) {
        let payload = number.to_le_bytes();
        let head = Head {
            kind: kind::LOOKUP,
            source: asker,
            sink: key.len() as NodeId,
            sent: SendStamp::at(send_time_ns),
        };
        // Lookups belong to no run: no tag.
        let shape = DataShape {
            trace_slots: shape.trace_slots,
            slot_bytes: shape.slot_bytes,
            ..DataShape::default()
        };
        append_frame(out, head, key, shape, &payload, crc32(&payload));
    }

    fn append_lookup_reply(
        out: &mut Vec<u8>,
        lookup: &DataFrame<'_, Self>,
        owner: NodeId,
        owner_addr: SocketAddr,
    ) {
        let bytes = lookup.bytes();
        // `peek` checked that a lookup's payload is its 4-byte number.
        let (header, number) = header_and_tail(lookup);
        let mut payload = number.to_vec();
        payload.extend_from_slice(&owner_addr.port().to_le_bytes());
        match owner_addr.ip() {
            std::net::IpAddr::V4(ip) => payload.extend_from_slice(&ip.octets()),
            std::net::IpAddr::V6(ip) => payload.extend_from_slice(&ip.octets()),
        }
        let trace_bytes = lookup.slot_bytes() * lookup.trace_slots();
        let trace = &bytes[DATA_HEADER_BYTES..DATA_HEADER_BYTES + trace_bytes];
        let reply = DataHeader {
            len: U32::new((DATA_HEADER_BYTES - PREFIX_BYTES + trace.len() + payload.len()) as u32),
            kind: kind::LOOKUP_REPLY,
            source: U32::new(owner),
            sink: U32::new(lookup.source()),
            crc32: U32::new(crc32(&payload)),
            ..*header
        };
        out.extend_from_slice(reply.as_bytes());
        out.extend_from_slice(trace);
        out.extend_from_slice(&payload);
    }

    fn lookup_reply(frame: &DataFrame<'_, Self>) -> (u32, SocketAddr) {
        let (_, payload) = header_and_tail(frame);
        // `peek` checked the payload: a number, a port, and 4 or 16 address bytes.
        let number = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
        let port = u16::from_le_bytes(payload[4..6].try_into().expect("2 bytes"));
        let ip = match <[u8; 4]>::try_from(&payload[6..]) {
            Ok(v4) => std::net::IpAddr::from(v4),
            Err(_) => std::net::IpAddr::from(
                <[u8; 16]>::try_from(&payload[6..]).expect("peek checked 4 or 16 bytes"),
            ),
        };
        (number, SocketAddr::new(ip, port))
    }

    #[inline]
    fn mark_detoured(frame: &mut [u8]) {
        if matches!(
            frame.get(PREFIX_BYTES),
            Some(&kind::DATA | &kind::KEYED_DATA)
        ) && let Some(flags) = frame.get_mut(FLAGS_AT)
        {
            *flags |= FLAG_DETOURED;
        }
    }

    fn append_ack(out: &mut Vec<u8>, source: NodeId, sink: NodeId, epoch: u32, acked_bytes: u64) {
        let ack = AckFrame {
            len: U32::new((ACK_FRAME_BYTES - PREFIX_BYTES) as u32),
            kind: kind::ACK,
            reserved: [0; 3],
            source: U32::new(source),
            sink: U32::new(sink),
            epoch: U32::new(epoch),
            reserved2: U32::new(0),
            acked_bytes: U64::new(acked_bytes),
        };
        out.extend_from_slice(ack.as_bytes());
    }

    fn encode_control(message: &Control, out: &mut Vec<u8>) {
        match message {
            Control::Manifest(manifest) if manifest_bytes(manifest) > FRAME_BYTES_MAX => {
                encode_manifest_in_frames(manifest, out)
            }
            _ => put_frame(out, |out| encode_body(message, out)),
        }
    }

    fn decode_control(frame: &[u8]) -> Result<Control, WireError> {
        let body = frame
            .get(PREFIX_BYTES..)
            .ok_or(WireError::Truncated { what: "frame" })?;
        decode_body(body)
    }
}

/// CRC32 (IEEE) of a payload. A payload of just its 4-byte value (every run without extra
/// payload) takes four table lookups ([`PayloadCrc`], tables made once from `crc32fast`'s
/// CRCs); longer ones go through [`crc32_by_hasher`].
#[inline]
pub fn crc32(payload: &[u8]) -> u32 {
    static VALUE_ONLY: LazyLock<PayloadCrc> = LazyLock::new(|| PayloadCrc::new(&[0; 4]));
    match <[u8; 4]>::try_from(payload) {
        Ok(value) => VALUE_ONLY.of(value),
        Err(_) => crc32_by_hasher(payload),
    }
}

/// CRC32 (IEEE) by `crc32fast`. `crc32fast::hash` asks which CPU features there are on every
/// call, which costs more than the CRC of a short payload itself; a hasher made once (with
/// that answer) is copied instead.
#[inline]
pub fn crc32_by_hasher(payload: &[u8]) -> u32 {
    static PROTOTYPE: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);
    let mut hasher = PROTOTYPE.clone();
    hasher.update(payload);
    hasher.finalize()
}

/// The error for a length prefix out of bounds: `swapped`, the prefix read in the classic
/// format's byte order, tells a classic peer from garbage.
#[cold]
#[inline(never)]
fn frame_length_error(declared: usize, swapped: u32) -> WireError {
    if swapped != 0 && swapped as usize <= FRAME_BYTES_MAX - PREFIX_BYTES {
        return WireError::OtherFormat {
            ours: Native::NAME,
            theirs: super::classic::Classic::NAME,
            declared: declared as u64,
        };
    }
    WireError::FrameLength {
        declared: declared as u64,
        max: FRAME_BYTES_MAX - PREFIX_BYTES,
    }
}

#[cfg(test)]
mod tests;

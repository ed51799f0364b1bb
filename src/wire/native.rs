//! The native encoding: little-endian, one 4-byte length prefix per frame, and a fixed 32-byte
//! header for the data plane that relays read and patch in place (docs/PROTOCOL.md has the
//! byte tables).

use std::net::SocketAddr;
use std::sync::LazyLock;

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::reader::{Reader, put_ip, put_string};
use super::{
    Ack, Change, ChordIds, Codec, Control, Corruption, Counters, DataFrame, DataShape, Delivered,
    LinkCount, LookupAnswer, Manifest, ManifestEntry, Members, MembershipChange, NewTable, NodeId,
    PayloadCrc, Peek, Refusal, Status, Targets, WireError,
};
use crate::chord::id::ID_BYTES;
use crate::chord::{Id, IdSpace};
use crate::limits::{
    BACKUP_ENTRIES, CHORD_ID_BITS_MAX, FRAME_BYTES_MAX, MANIFEST_MEMBERS_MAX,
    MANIFEST_MORE_HEAD_BYTES, NR_MAX, SUMMARY_LINKS_MAX, TRACE_SLOTS_MAX,
};
use crate::stats::RunStats;

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
}

/// Reasons of a refusal (`kind::REFUSED`).
pub mod refusal_code {
    pub const BUSY: u8 = 1;
    pub const SECRET_REQUIRED: u8 = 2;
    pub const NO_SECRET: u8 = 3;
    pub const WRONG_SECRET: u8 = 4;
    pub const CLASSIC_WIRE: u8 = 5;
}

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

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// The most nodes a lookup's path names: the asker, a full trace of relays, the owner.
const LOOKUP_PATH_MAX: usize = TRACE_SLOTS_MAX + 2;

/// The fixed header of a data frame. The trace (`trace_slots` little-endian u32 relay IDs)
/// and then the payload follow it.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DataHeader {
    /// Bytes after this field: header rest + trace + payload.
    pub len: U32,
    /// [`kind::DATA`].
    pub kind: u8,
    /// Relay slots in the trace; the same for every frame of an overlay.
    pub trace_slots: u8,
    /// Relays so far = trace slots used.
    pub hop_count: u8,
    /// [`FLAG_TRACE_OVERFLOW`], [`FLAG_DETOURED`]; bits 4..=7 the run tag ([`RUN_TAG_SHIFT`]);
    /// other bits zero.
    pub flags: u8,
    /// The node that originated the packet.
    pub source: U32,
    /// The node the packet is for: the only field a relay routes on. 0 in a keyed frame
    /// ([`kind::KEYED_DATA`]), which is routed by the key between its trace and its payload.
    pub sink: U32,
    /// Payload bytes after the trace (4-byte value + extra bytes).
    pub payload_len: U32,
    /// CRC32 (IEEE) of the payload.
    pub crc32: U32,
    /// The source's CLOCK_MONOTONIC at sending, for latency.
    pub send_time_ns: U64,
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
pub const ACK_FRAME_BYTES: usize = size_of::<AckFrame>();
/// Bytes of one [`LinkCount`] in a summary: peer, sent, received.
const LINK_COUNT_BYTES: usize = 4 + 8 + 8;
const _: () = assert!(DATA_HEADER_BYTES == 32);
const _: () = assert!(ACK_FRAME_BYTES == 32);

/// Offset of the payload length in a data frame (keyed or not).
const PAYLOAD_LEN_AT: usize = std::mem::offset_of!(DataHeader, payload_len);

/// Bytes of one data frame of `shape`.
pub fn data_frame_bytes(shape: DataShape) -> usize {
    DATA_HEADER_BYTES + 4 * shape.trace_slots + 4 + shape.extra_payload_bytes
}

/// The native encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Native;

impl Codec for Native {
    const NAME: &'static str = "native";
    const KEYED: bool = true;
    const TRACE_AT: usize = DATA_HEADER_BYTES;
    const ID_MAX: NodeId = NodeId::MAX;

    #[inline]
    fn read_id(bytes: [u8; 4]) -> NodeId {
        NodeId::from_le_bytes(bytes)
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
    fn peek(frame: &[u8]) -> Result<Peek<'_, Self>, WireError> {
        // A well-formed data frame inline; everything else out of line.
        if frame.get(PREFIX_BYTES) == Some(&kind::DATA)
            && let Ok((header, rest)) = DataHeader::ref_from_prefix(frame)
        {
            let slots = usize::from(header.trace_slots);
            let payload = header.payload_len.get() as usize;
            if slots <= TRACE_SLOTS_MAX
                && usize::from(header.hop_count) <= slots
                && rest.len() == 4 * slots + payload
            {
                return Ok(Peek::Data(DataFrame::checked(
                    frame,
                    header.sink.get(),
                    header.source.get(),
                    u16::from(header.hop_count),
                    u16::from(header.trace_slots),
                    header.flags & FLAG_TRACE_OVERFLOW != 0,
                )));
            }
        }
        peek_slow(frame)
    }

    #[inline]
    fn append_relayed(frame: &DataFrame<'_, Self>, self_id: NodeId, out: &mut Vec<u8>) {
        Self::append_relayed_head(frame, self_id, frame.bytes().len(), out);
    }

    #[inline]
    fn relayed_head(frame: &DataFrame<'_, Self>) -> Option<usize> {
        // `peek` checked the trace's slots lie in the frame.
        Some(DATA_HEADER_BYTES + 4 * frame.trace_slots())
    }

    #[inline]
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
            copy[HOP_COUNT_AT] = hop as u8 + 1;
            let at = DATA_HEADER_BYTES + 4 * hop;
            copy[at..at + 4].copy_from_slice(&self_id.to_le_bytes());
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
            send_time_ns,
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
        let payload_at = DATA_HEADER_BYTES + 4 * shape.trace_slots;
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
        let payload_len = u32::from_le_bytes(
            bytes[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 4]
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        // `peek` checked that the key lies between the trace and the payload.
        &bytes[DATA_HEADER_BYTES + 4 * frame.trace_slots()..bytes.len() - payload_len]
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
            sink: 0,
            send_time_ns,
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
        trace_slots: usize,
        number: u32,
        send_time_ns: u64,
    ) {
        let payload = number.to_le_bytes();
        let head = Head {
            kind: kind::LOOKUP,
            source: asker,
            sink: 0,
            send_time_ns,
        };
        // Lookups belong to no run: no tag.
        let shape = DataShape {
            trace_slots,
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
        let trace = &bytes[DATA_HEADER_BYTES..DATA_HEADER_BYTES + 4 * lookup.trace_slots()];
        let reply = DataHeader {
            len: U32::new((DATA_HEADER_BYTES - PREFIX_BYTES + trace.len() + payload.len()) as u32),
            kind: kind::LOOKUP_REPLY,
            source: U32::new(owner),
            sink: U32::new(lookup.source()),
            payload_len: U32::new(payload.len() as u32),
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

/// One frame: the length prefix, then what `body` writes.
fn put_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    body(out);
    let declared = (out.len() - start - PREFIX_BYTES) as u32;
    out[start..start + PREFIX_BYTES].copy_from_slice(&declared.to_le_bytes());
}

/// A manifest too large for one frame: the first frame (type 6) with the node's own part and
/// as many members as fit, then continuations (type 23) of as many members as a frame holds,
/// until every member is sent. Nothing is copied but into `out`.
fn encode_manifest_in_frames(manifest: &Manifest, out: &mut Vec<u8>) {
    let members = manifest.all_ids.len();
    let per_member = member_bytes(manifest.chord.as_deref());
    let head = manifest_bytes(manifest) - members * per_member;
    let mut sent = members.min(FRAME_BYTES_MAX.saturating_sub(head) / per_member);
    put_frame(out, |out| put_manifest(out, manifest, members, 0..sent));
    let per_frame = (FRAME_BYTES_MAX - MANIFEST_MORE_HEAD_BYTES) / per_member;
    while sent < members {
        let next = members.min(sent + per_frame);
        put_frame(out, |out| {
            out.push(kind::MANIFEST_MORE);
            put_members(
                out,
                &manifest.all_ids,
                manifest.chord.as_deref(),
                sent..next,
            );
        });
        sent = next;
    }
}

/// A manifest's first (or only) frame: the node's own part, the overlay's `members` in all,
/// and the members `carried` of them.
fn put_manifest(
    out: &mut Vec<u8>,
    manifest: &Manifest,
    members: usize,
    carried: std::ops::Range<usize>,
) {
    out.push(kind::MANIFEST);
    out.push(manifest.entries.len() as u8);
    out.push(manifest.trace_slots);
    put_u64(out, manifest.window_bytes);
    for entry in &manifest.entries {
        put_u32(out, entry.id);
        put_addr(out, &entry.addr);
    }
    put_u32(out, members as u32);
    put_members(out, &manifest.all_ids, manifest.chord.as_deref(), carried);
    put_u32(out, manifest.epoch);
    // Backup entries: an optional last section (a manifest without them ends above).
    if !manifest.backups.is_empty() {
        out.push(manifest.backups.len() as u8);
        for entry in &manifest.backups {
            put_u32(out, entry.id);
            put_addr(out, &entry.addr);
        }
    }
}

/// The members `range` of a manifest: their count, their IDs, the identifier width m (0 for
/// position fingers) and, in Chord mode, their identifiers.
fn put_members(
    out: &mut Vec<u8>,
    ids: &[NodeId],
    chord: Option<&ChordIds>,
    range: std::ops::Range<usize>,
) {
    put_u32(out, range.len() as u32);
    for id in &ids[range.clone()] {
        put_u32(out, *id);
    }
    match chord {
        None => out.push(0),
        Some(chord) => {
            out.push(chord.bits as u8);
            let width = identifier_bytes(chord.bits);
            for id in &chord.ids[range] {
                out.extend_from_slice(&id.to_be_bytes()[ID_BYTES - width..]);
            }
        }
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(U16::new(value).as_bytes());
}
fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(U32::new(value).as_bytes());
}
fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(U64::new(value).as_bytes());
}
fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(I64::new(value).as_bytes());
}
fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    put_ip(out, addr.ip());
    put_u16(out, addr.port());
}
fn put_status(out: &mut Vec<u8>, status: Status, info: &str) {
    put_i64(
        out,
        match status {
            Status::Ok(id) => i64::from(id),
            Status::Failed => -1,
        },
    );
    put_string(out, info);
}

fn encode_body(message: &Control, out: &mut Vec<u8>) {
    match message {
        Control::Register { addr } => {
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
            put_u32(out, *id);
        }
        Control::DeregisterStatus { status, info } => {
            out.push(kind::DEREGISTER_STATUS);
            put_status(out, *status, info);
        }
        Control::Manifest(manifest) => put_manifest(
            out,
            manifest,
            manifest.all_ids.len(),
            0..manifest.all_ids.len(),
        ),
        Control::ManifestStart { manifest, members } => {
            put_manifest(out, manifest, *members, 0..manifest.all_ids.len())
        }
        Control::ManifestMore(more) => {
            out.push(kind::MANIFEST_MORE);
            put_members(out, &more.ids, more.chord.as_ref(), 0..more.ids.len());
        }
        Control::SetupStatus { status, info } => {
            out.push(kind::SETUP_STATUS);
            put_status(out, *status, info);
        }
        Control::TaskInitiate {
            run,
            packets,
            extra_payload_bytes,
            rate_per_s,
            targets,
        } => {
            out.push(kind::TASK_INITIATE);
            put_u32(out, *run);
            put_u64(out, *packets);
            put_u32(out, *extra_payload_bytes);
            put_u32(out, *rate_per_s);
            out.push(match targets {
                Targets::Nodes => 0,
                Targets::Keys { bits } => *bits as u8,
            });
        }
        Control::TaskFinished { addr, id } => {
            out.push(kind::TASK_FINISHED);
            put_addr(out, addr);
            put_u32(out, *id);
        }
        Control::SummaryRequest { reset, links } => {
            out.push(kind::SUMMARY_REQUEST);
            out.push(u8::from(*reset) | u8::from(*links) << 1);
        }
        Control::Hello { nonce } => {
            out.push(kind::HELLO);
            match nonce {
                Some(nonce) => {
                    out.push(1);
                    out.extend_from_slice(nonce);
                }
                None => out.push(0),
            }
        }
        Control::Challenge { nonce, proof } => {
            out.push(kind::CHALLENGE);
            out.extend_from_slice(nonce);
            out.extend_from_slice(proof);
        }
        Control::Response { proof } => {
            out.push(kind::RESPONSE);
            out.extend_from_slice(proof);
        }
        Control::Lookup { number, key } => {
            out.push(kind::LOOKUP_REQUEST);
            put_u32(out, *number);
            put_string(out, key);
        }
        Control::LookupResult { number, result } => {
            out.push(kind::LOOKUP_RESULT);
            put_u32(out, *number);
            match result {
                Ok(answer) => {
                    out.push(1);
                    put_string(out, &answer.key);
                    put_u32(out, answer.owner);
                    out.push(answer.path.len() as u8);
                    for node in &answer.path {
                        put_u32(out, *node);
                    }
                    put_u64(out, answer.round_trip_ns);
                }
                Err(why) => {
                    out.push(0);
                    put_string(out, why);
                }
            }
        }
        Control::Refused(refusal) => {
            out.push(kind::REFUSED);
            match refusal {
                Refusal::Busy => out.push(refusal_code::BUSY),
                Refusal::SecretRequired => out.push(refusal_code::SECRET_REQUIRED),
                Refusal::NoSecret => out.push(refusal_code::NO_SECRET),
                Refusal::WrongSecret => out.push(refusal_code::WRONG_SECRET),
                Refusal::ClassicWire => out.push(refusal_code::CLASSIC_WIRE),
            }
        }
        Control::Membership(change) => encode_membership(change, out),
        Control::MembershipAck { version, count } => {
            out.push(kind::MEMBERSHIP_ACK);
            put_u32(out, *version);
            put_u64(out, *count);
        }
        Control::Summary {
            id,
            reset,
            counters,
            stats,
            links,
        } => {
            out.push(kind::SUMMARY);
            put_u32(out, *id);
            out.push(u8::from(*reset));
            put_u64(out, counters.sent);
            put_u64(out, counters.received);
            put_u64(out, counters.relayed);
            put_i64(out, counters.sum_sent);
            put_i64(out, counters.sum_received);
            put_u64(out, counters.corrupted);
            put_u64(out, counters.dropped);
            put_u64(out, counters.stale);
            put_u64(out, counters.links_cut);
            put_u64(out, counters.relay_bound_drops);
            match stats {
                None => out.push(0),
                Some(stats) => {
                    out.push(1);
                    stats.encode(out);
                }
            }
            put_u32(out, u32::try_from(links.len()).unwrap_or(u32::MAX));
            for link in links {
                put_u32(out, link.peer);
                put_u64(out, link.sent);
                put_u64(out, link.received);
            }
        }
    }
}

/// What differs between the data frames a source builds: kind, addresses, time.
struct Head {
    kind: u8,
    source: NodeId,
    sink: NodeId,
    send_time_ns: u64,
}

/// Appends a data frame (keyed when `key` is not empty) with an empty trace; returns its
/// length.
#[inline(always)]
fn append_frame(
    out: &mut Vec<u8>,
    head: Head,
    key: &[u8],
    shape: DataShape,
    payload: &[u8],
    payload_crc: u32,
) -> usize {
    debug_assert_eq!(payload.len(), 4 + shape.extra_payload_bytes);
    debug_assert_eq!(payload_crc, crc32(payload));
    let trace_bytes = 4 * shape.trace_slots;
    let total = DATA_HEADER_BYTES + trace_bytes + key.len() + payload.len();
    let header = DataHeader {
        len: U32::new((total - PREFIX_BYTES) as u32),
        kind: head.kind,
        trace_slots: shape.trace_slots as u8,
        hop_count: 0,
        flags: shape.run_tag << RUN_TAG_SHIFT,
        source: U32::new(head.source),
        sink: U32::new(head.sink),
        payload_len: U32::new(payload.len() as u32),
        crc32: U32::new(payload_crc),
        send_time_ns: U64::new(head.send_time_ns),
    };
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + trace_bytes, 0);
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    total
}

/// The sink's checks of a data frame (keyed or not) whose header and payload `locate` finds.
#[inline(always)]
fn check_payload<'a>(
    frame: &DataFrame<'a, Native>,
    shape: DataShape,
    locate: impl FnOnce(&DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]),
) -> Result<Delivered, Corruption> {
    let slots = frame.trace_slots();
    if slots != shape.trace_slots {
        return Err(Corruption::Header(format!(
            "{slots} trace slots, this overlay uses {}",
            shape.trace_slots
        )));
    }
    let (header, payload) = locate(frame);
    let detoured = header.flags & FLAG_DETOURED != 0;
    if frame.overflowed() && !detoured {
        return Err(Corruption::TraceOverflow { slots });
    }
    // The payload size is the source's choice for its run (a sink may hear of the run
    // later than the source): `peek` checked it fills the frame; it must hold the value.
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
        send_time_ns: header.send_time_ns.get(),
        relays: frame.relays(),
        detoured,
    })
}

/// The header and the payload of a frame `peek` accepted as data: the view proves the header
/// is there and the payload follows the trace slots.
#[inline]
fn header_and_payload<'a>(frame: &DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]) {
    let bytes = frame.bytes();
    let (head, rest) = bytes.split_at(DATA_HEADER_BYTES);
    let header = DataHeader::ref_from_bytes(head).expect("peek checked the header's length");
    (header, &rest[4 * frame.trace_slots()..])
}

/// The header and the payload of any frame `peek` accepted with a data header (keyed or
/// not): the payload is the frame's tail, after the trace and any key.
fn header_and_tail<'a>(frame: &DataFrame<'a, Native>) -> (&'a DataHeader, &'a [u8]) {
    let (head, rest) = frame.bytes().split_at(DATA_HEADER_BYTES);
    let header = DataHeader::ref_from_bytes(head).expect("peek checked the header's length");
    (
        header,
        &rest[rest.len() - header.payload_len.get() as usize..],
    )
}

/// [`Codec::peek`] for everything but a well-formed data frame.
#[cold]
#[inline(never)]
fn peek_slow(frame: &[u8]) -> Result<Peek<'_, Native>, WireError> {
    match frame.get(PREFIX_BYTES) {
        Some(&kind::DATA) => {
            let (header, rest) =
                DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
                    what: "data header",
                })?;
            Err(WireError::BadField {
                what: "data header",
                detail: format!(
                    "{} trace slots, {} hops and {} payload bytes do not fill {} bytes",
                    header.trace_slots,
                    header.hop_count,
                    header.payload_len.get(),
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

/// [`Codec::peek`] for a keyed data frame or a lookup (its payload exactly `payload` bytes,
/// or any with 0): the header's fields and a key of 1 to [`ID_BYTES`] bytes fill the frame
/// exactly, and `sink` is 0.
fn peek_keyed(frame: &[u8], payload: u32) -> Result<DataFrame<'_, Native>, WireError> {
    let (header, rest) = DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
        what: "keyed data header",
    })?;
    let slots = usize::from(header.trace_slots);
    let key_bytes = rest
        .len()
        .checked_sub(4 * slots)
        .and_then(|left| left.checked_sub(header.payload_len.get() as usize));
    match key_bytes {
        Some(1..=ID_BYTES)
            if slots <= TRACE_SLOTS_MAX
                && usize::from(header.hop_count) <= slots
                && header.sink.get() == 0
                && (payload == 0 || header.payload_len.get() == payload) =>
        {
            Ok(DataFrame::checked(
                frame,
                0,
                header.source.get(),
                u16::from(header.hop_count),
                u16::from(header.trace_slots),
                header.flags & FLAG_TRACE_OVERFLOW != 0,
            ))
        }
        _ => Err(WireError::BadField {
            what: "keyed data header",
            detail: format!(
                "{} trace slots, {} hops, sink {} and {} payload bytes do not leave a key of 1 \
                 to {ID_BYTES} bytes in {} bytes (sink must be 0)",
                header.trace_slots,
                header.hop_count,
                header.sink.get(),
                header.payload_len.get(),
                rest.len()
            ),
        }),
    }
}

/// [`Codec::peek`] for a lookup reply: a data header whose trace and payload fill the frame,
/// the payload a lookup number, a port and an IPv4 or IPv6 address.
fn peek_reply(frame: &[u8]) -> Result<Peek<'_, Native>, WireError> {
    let (header, rest) = DataHeader::ref_from_prefix(frame).map_err(|_| WireError::Truncated {
        what: "lookup reply header",
    })?;
    let slots = usize::from(header.trace_slots);
    let payload = header.payload_len.get() as usize;
    if slots <= TRACE_SLOTS_MAX
        && usize::from(header.hop_count) <= slots
        && (payload == 4 + 2 + 4 || payload == 4 + 2 + 16)
        && rest.len() == 4 * slots + payload
    {
        return Ok(Peek::LookupReply(DataFrame::checked(
            frame,
            header.sink.get(),
            header.source.get(),
            u16::from(header.hop_count),
            u16::from(header.trace_slots),
            header.flags & FLAG_TRACE_OVERFLOW != 0,
        )));
    }
    Err(WireError::BadField {
        what: "lookup reply",
        detail: format!(
            "{} trace slots, {} hops and {payload} payload bytes (10 or 22) do not fill {} bytes",
            header.trace_slots,
            header.hop_count,
            rest.len()
        ),
    })
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

impl Reader<'_> {
    fn u16_le(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32_le(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64_le(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64_le(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn addr_le(&mut self) -> Result<SocketAddr, WireError> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, self.u16_le()?))
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError::BadField {
                what: "flag",
                detail: format!("{other} (must be 0 or 1)"),
            }),
        }
    }
    fn status_le(&mut self) -> Result<(Status, String), WireError> {
        let raw = self.i64_le()?;
        let status = match raw {
            -1 => Status::Failed,
            id if (0..=i64::from(u32::MAX)).contains(&id) => Status::Ok(id as u32),
            other => {
                return Err(WireError::BadField {
                    what: "status",
                    detail: format!("{other} (must be an ID or -1)"),
                });
            }
        };
        Ok((status, self.string()?))
    }
}

/// Bytes of `manifest` encoded, length prefix included.
fn manifest_bytes(manifest: &Manifest) -> usize {
    let address = |addr: &SocketAddr| {
        if addr.is_ipv4() {
            1 + 4 + 2
        } else {
            1 + 16 + 2
        }
    };
    let entries: usize = manifest
        .entries
        .iter()
        .chain(&manifest.backups)
        .map(|e| 4 + address(&e.addr))
        .sum();
    let backups = usize::from(!manifest.backups.is_empty());
    PREFIX_BYTES
        + 1
        + 1
        + 1
        + 8
        + entries
        + 4
        + 4
        + 1
        + manifest.all_ids.len() * member_bytes(manifest.chord.as_deref())
        + 4
        + backups
}

/// Bytes of one member in a manifest: its ID and, in Chord mode, its identifier.
fn member_bytes(chord: Option<&ChordIds>) -> usize {
    4 + chord.map_or(0, |chord| identifier_bytes(chord.bits))
}

/// Bytes of one Chord identifier of `bits` bits in a manifest: its big-endian form without
/// the leading bytes that are always zero.
fn identifier_bytes(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

/// A manifest's `count` Chord identifiers of `bits` bits, each checked to lie in the space.
fn chord_ids(reader: &mut Reader<'_>, bits: u32, count: usize) -> Result<ChordIds, WireError> {
    let space = IdSpace::new(bits).ok_or_else(|| WireError::BadField {
        what: "manifest identifier bits",
        detail: format!("{bits} (must be 1..={CHORD_ID_BITS_MAX})"),
    })?;
    let width = identifier_bytes(bits);
    if count > reader.remaining() / width {
        return Err(WireError::Truncated {
            what: "manifest identifiers",
        });
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let mut bytes = [0; ID_BYTES];
        bytes[ID_BYTES - width..].copy_from_slice(reader.take(width)?);
        let id = Id::from_be_bytes(bytes);
        if !space.contains(id) {
            return Err(WireError::BadField {
                what: "manifest identifier",
                detail: format!("{id:x} is outside the {bits}-bit space"),
            });
        }
        ids.push(id);
    }
    Ok(ChordIds { bits, ids })
}

/// A manifest's members (`put_members`), each count checked against the bytes left before
/// anything is allocated.
fn members_of(reader: &mut Reader<'_>) -> Result<Members, WireError> {
    let count = reader.u32_le()? as usize;
    if count > reader.remaining() / 4 {
        return Err(WireError::Truncated {
            what: "manifest ID list",
        });
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(reader.u32_le()?);
    }
    let chord = match u32::from(reader.u8()?) {
        0 => None,
        bits => Some(chord_ids(reader, bits, count)?),
    };
    Ok(Members { ids, chord })
}

fn decode_body(body: &[u8]) -> Result<Control, WireError> {
    let mut reader = Reader::new(body, "control message");
    let code = reader.u8()?;
    let message = match code {
        kind::REGISTER => Control::Register {
            addr: reader.addr_le()?,
        },
        kind::REGISTER_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::RegisterStatus { status, info }
        }
        kind::DEREGISTER => Control::Deregister {
            addr: reader.addr_le()?,
            id: reader.u32_le()?,
        },
        kind::DEREGISTER_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::DeregisterStatus { status, info }
        }
        kind::MANIFEST => {
            let count = usize::from(reader.u8()?);
            let trace_slots = reader.u8()?;
            if usize::from(trace_slots) > TRACE_SLOTS_MAX {
                return Err(WireError::BadField {
                    what: "manifest trace slots",
                    detail: format!("{trace_slots} (at most {TRACE_SLOTS_MAX})"),
                });
            }
            let window_bytes = reader.u64_le()?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let id = reader.u32_le()?;
                entries.push(ManifestEntry {
                    id,
                    addr: reader.addr_le()?,
                });
            }
            let members = reader.u32_le()? as usize;
            if members > MANIFEST_MEMBERS_MAX {
                return Err(WireError::BadField {
                    what: "manifest members",
                    detail: format!("{members} (at most {MANIFEST_MEMBERS_MAX})"),
                });
            }
            let Members {
                ids: all_ids,
                chord,
            } = members_of(&mut reader)?;
            if all_ids.len() > members {
                return Err(WireError::BadField {
                    what: "manifest members",
                    detail: format!("{} carried of {members}", all_ids.len()),
                });
            }
            let epoch = reader.u32_le()?;
            let mut backups = Vec::new();
            if reader.remaining() > 0 {
                let count = usize::from(reader.u8()?);
                for _ in 0..count {
                    let id = reader.u32_le()?;
                    backups.push(ManifestEntry {
                        id,
                        addr: reader.addr_le()?,
                    });
                }
            }
            let carried = all_ids.len();
            let manifest = Manifest {
                entries,
                all_ids: all_ids.into(),
                chord: chord.map(std::sync::Arc::new),
                trace_slots,
                window_bytes,
                backups,
                epoch,
            };
            if carried == members {
                Control::Manifest(manifest)
            } else {
                Control::ManifestStart { manifest, members }
            }
        }
        kind::MANIFEST_MORE => Control::ManifestMore(members_of(&mut reader)?),
        kind::SETUP_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::SetupStatus { status, info }
        }
        kind::TASK_INITIATE => Control::TaskInitiate {
            run: reader.u32_le()?,
            packets: reader.u64_le()?,
            extra_payload_bytes: reader.u32_le()?,
            rate_per_s: reader.u32_le()?,
            targets: match u32::from(reader.u8()?) {
                0 => Targets::Nodes,
                bits @ 1..=CHORD_ID_BITS_MAX => Targets::Keys { bits },
                other => {
                    return Err(WireError::BadField {
                        what: "task key bits",
                        detail: format!("{other} (0 for nodes, or 1..={CHORD_ID_BITS_MAX})"),
                    });
                }
            },
        },
        kind::TASK_FINISHED => Control::TaskFinished {
            addr: reader.addr_le()?,
            id: reader.u32_le()?,
        },
        kind::SUMMARY_REQUEST => match reader.u8()? {
            flags @ 0..=3 => Control::SummaryRequest {
                reset: flags & 1 != 0,
                links: flags & 2 != 0,
            },
            other => {
                return Err(WireError::BadField {
                    what: "summary request flags",
                    detail: format!("{other} (bit 0: reset, bit 1: per-link counts)"),
                });
            }
        },
        kind::SUMMARY => Control::Summary {
            id: reader.u32_le()?,
            reset: reader.bool()?,
            counters: Counters {
                sent: reader.u64_le()?,
                received: reader.u64_le()?,
                relayed: reader.u64_le()?,
                sum_sent: reader.i64_le()?,
                sum_received: reader.i64_le()?,
                corrupted: reader.u64_le()?,
                dropped: reader.u64_le()?,
                stale: reader.u64_le()?,
                links_cut: reader.u64_le()?,
                relay_bound_drops: reader.u64_le()?,
            },
            stats: if reader.bool()? {
                let (stats, used) =
                    RunStats::decode(reader.rest()).map_err(|detail| WireError::BadField {
                        what: "traffic summary statistics",
                        detail,
                    })?;
                reader.take(used)?;
                Some(stats)
            } else {
                None
            },
            links: {
                let count = reader.u32_le()? as usize;
                // Bounded before allocating: a node has at most this many links.
                if count > SUMMARY_LINKS_MAX || reader.rest().len() < count * LINK_COUNT_BYTES {
                    return Err(WireError::BadField {
                        what: "traffic summary links",
                        detail: format!("{count} links in {} bytes", reader.rest().len()),
                    });
                }
                let mut links = Vec::with_capacity(count);
                for _ in 0..count {
                    links.push(LinkCount {
                        peer: reader.u32_le()?,
                        sent: reader.u64_le()?,
                        received: reader.u64_le()?,
                    });
                }
                links
            },
        },
        kind::HELLO => Control::Hello {
            nonce: match reader.u8()? {
                0 => None,
                1 => Some(reader.array()?),
                other => {
                    return Err(WireError::BadField {
                        what: "hello",
                        detail: format!("secret flag {other} (must be 0 or 1)"),
                    });
                }
            },
        },
        kind::CHALLENGE => Control::Challenge {
            nonce: reader.array()?,
            proof: reader.array()?,
        },
        kind::RESPONSE => Control::Response {
            proof: reader.array()?,
        },
        kind::LOOKUP_REQUEST => Control::Lookup {
            number: reader.u32_le()?,
            key: reader.string()?,
        },
        kind::LOOKUP_RESULT => Control::LookupResult {
            number: reader.u32_le()?,
            result: if reader.bool()? {
                let key = reader.string()?;
                let owner = reader.u32_le()?;
                let count = usize::from(reader.u8()?);
                if count > LOOKUP_PATH_MAX {
                    return Err(WireError::BadField {
                        what: "lookup path",
                        detail: format!("{count} nodes (at most {LOOKUP_PATH_MAX})"),
                    });
                }
                let mut path = Vec::with_capacity(count);
                for _ in 0..count {
                    path.push(reader.u32_le()?);
                }
                Ok(LookupAnswer {
                    key,
                    owner,
                    path,
                    round_trip_ns: reader.u64_le()?,
                })
            } else {
                Err(reader.string()?)
            },
        },
        kind::REFUSED => Control::Refused(match reader.u8()? {
            refusal_code::BUSY => Refusal::Busy,
            refusal_code::SECRET_REQUIRED => Refusal::SecretRequired,
            refusal_code::NO_SECRET => Refusal::NoSecret,
            refusal_code::WRONG_SECRET => Refusal::WrongSecret,
            refusal_code::CLASSIC_WIRE => Refusal::ClassicWire,
            other => {
                return Err(WireError::BadField {
                    what: "refusal",
                    detail: format!("unknown reason {other}"),
                });
            }
        }),
        kind::MEMBERSHIP => Control::Membership(decode_membership(&mut reader)?),
        kind::MEMBERSHIP_ACK => Control::MembershipAck {
            version: reader.u32_le()?,
            count: reader.u64_le()?,
        },
        other => return Err(WireError::UnknownType(other)),
    };
    reader.finish()?;
    Ok(message)
}

/// A membership change: version, what changed and about which node (with a joining node's
/// address and, in Chord mode, its identifier: a flag, then 20 bytes big-endian; a leaver's
/// expected count), then the receiver's new table if it has one (a flag; a count, then ID
/// and address per entry; the same for its backup entries).
fn encode_membership(message: &MembershipChange, out: &mut Vec<u8>) {
    out.push(kind::MEMBERSHIP);
    put_u32(out, message.version);
    match &message.change {
        Change::Join {
            id,
            addr,
            identifier,
        } => {
            out.push(change_code::JOIN);
            put_u32(out, *id);
            put_addr(out, addr);
            match identifier {
                None => out.push(0),
                Some(identifier) => {
                    out.push(1);
                    out.extend_from_slice(&identifier.to_be_bytes());
                }
            }
        }
        Change::Commit { id } => {
            out.push(change_code::COMMIT);
            put_u32(out, *id);
        }
        Change::Open { id } => {
            out.push(change_code::OPEN);
            put_u32(out, *id);
        }
        Change::Leave { id } => {
            out.push(change_code::LEAVE);
            put_u32(out, *id);
        }
        Change::Drain { id, expected } => {
            out.push(change_code::DRAIN);
            put_u32(out, *id);
            put_u64(out, *expected);
        }
        Change::Gone { id } => {
            out.push(change_code::GONE);
            put_u32(out, *id);
        }
        Change::Close { id } => {
            out.push(change_code::CLOSE);
            put_u32(out, *id);
        }
    }
    match &message.table {
        None => out.push(0),
        Some(table) => {
            out.push(1);
            for list in [&table.entries, &table.backups] {
                out.push(list.len().min(usize::from(u8::MAX)) as u8);
                for entry in list.iter().take(usize::from(u8::MAX)) {
                    put_u32(out, entry.id);
                    put_addr(out, &entry.addr);
                }
            }
        }
    }
}

fn decode_membership(reader: &mut Reader<'_>) -> Result<MembershipChange, WireError> {
    let version = reader.u32_le()?;
    let code = reader.u8()?;
    let id = reader.u32_le()?;
    let change = match code {
        change_code::JOIN => {
            let addr = reader.addr_le()?;
            let identifier = if reader.bool()? {
                Some(Id::from_be_bytes(reader.array()?))
            } else {
                None
            };
            Change::Join {
                id,
                addr,
                identifier,
            }
        }
        change_code::COMMIT => Change::Commit { id },
        change_code::OPEN => Change::Open { id },
        change_code::LEAVE => Change::Leave { id },
        change_code::DRAIN => Change::Drain {
            id,
            expected: reader.u64_le()?,
        },
        change_code::GONE => Change::Gone { id },
        change_code::CLOSE => Change::Close { id },
        other => {
            return Err(WireError::BadField {
                what: "membership change",
                detail: format!("unknown change {other}"),
            });
        }
    };
    let table = if reader.bool()? {
        let mut lists = [Vec::new(), Vec::new()];
        for (list, (what, most)) in lists.iter_mut().zip([
            ("membership change table", NR_MAX),
            ("membership change backups", BACKUP_ENTRIES),
        ]) {
            let count = usize::from(reader.u8()?);
            if count > most {
                return Err(WireError::BadField {
                    what,
                    detail: format!("{count} entries (at most {most})"),
                });
            }
            list.reserve(count);
            for _ in 0..count {
                let id = reader.u32_le()?;
                list.push(ManifestEntry {
                    id,
                    addr: reader.addr_le()?,
                });
            }
        }
        let [entries, backups] = lists;
        Some(NewTable { entries, backups })
    } else {
        None
    };
    Ok(MembershipChange {
        version,
        change,
        table,
    })
}

#[cfg(test)]
mod tests;

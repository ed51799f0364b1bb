//! Wire formats: what travels on the connections, and the seam between an encoding and the
//! state machines.
//!
//! The registry and node state machines speak in [`Control`] messages and move data frames
//! through a [`Codec`]: they never look at bytes themselves. `native` is our encoding (a fixed
//! little-endian header read in place with zerocopy); `classic` is the reference's big-endian
//! format (docs/PROTOCOL.md, "Classic encoding"). What an encoding cannot express (acks,
//! progress polls, extra payload) is told by the [`Codec`] constants and
//! [`Codec::encodable`], so the state machines never ask for it.

pub mod classic;
pub mod control;
mod frame;
pub mod native;
mod payload_crc;
mod reader;

pub use frame::{Ack, DataFrame, Peek};
pub use payload_crc::PayloadCrc;

pub use control::{
    ALREADY_REGISTERED, Change, ChordIds, Control, Counters, GroupTag, LinkCount, LookupAnswer,
    Manifest, ManifestAssembly, ManifestEntry, Members, MembershipChange, NewTable, Refusal,
    Status, Targets,
};

/// A node's identifier in the ring (0..=127 by default, up to 32 bits wide).
pub type NodeId = u32;

/// What is wrong with bytes that arrived. Every variant closes the connection that sent them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A frame declared a length above the bound (or below the smallest frame).
    #[error("frame length {declared} is outside 1..={max} bytes")]
    FrameLength { declared: u64, max: usize },
    /// A length prefix that is out of bounds in this encoding but a valid length in the other
    /// one (the other byte order): the peer almost surely speaks the other wire format.
    #[error(
        "the peer speaks the {theirs} wire format, not the {ours} one (its length prefix reads \
         {declared} bytes in ours); start both sides with the same --wire"
    )]
    OtherFormat {
        ours: &'static str,
        theirs: &'static str,
        declared: u64,
    },
    /// The frame's type byte is not one this encoding defines.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The frame ended before a field it must hold.
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    /// The frame holds bytes after its last field.
    #[error("{extra} stray bytes after {what}")]
    Trailing { what: &'static str, extra: usize },
    /// A field holds a value its type does not allow.
    #[error("bad {what}: {detail}")]
    BadField { what: &'static str, detail: String },
    /// The message cannot be expressed in this encoding (found before encoding it).
    #[error("the {codec} wire format cannot carry {what}")]
    Unencodable { codec: &'static str, what: String },
}

/// A data packet that reached its sink, as the sink's checks saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub source: NodeId,
    /// The reference's random 32-bit value (first four payload bytes).
    pub value: i32,
    /// When the source sent it (its clock; comparable on one machine): `None` in a format
    /// without a send time (classic).
    pub sent: Option<SendStamp>,
    /// Relays the packet passed through (recorded in its trace).
    pub relays: usize,
    /// Some node routed it around a dead link (`native::FLAG_DETOURED`): its trace is checked
    /// by the structural rule only, and may have overflowed.
    pub detoured: bool,
}

/// A send time as a native data frame carries it: the source's CLOCK_MONOTONIC in
/// microseconds, modulo 2^32, so it wraps every 71.6 minutes. The sink tells the whole time
/// from it only when the packet cannot be a whole wrap older than it looks: it knows the
/// packet was sent after its own epoch began (docs/PROTOCOL.md, "The send time").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendStamp(pub u32);

impl SendStamp {
    /// Nanoseconds per unit of the stamp.
    pub const UNIT_NS: u64 = 1_000;
    /// The stamp's period: 2^32 units (71.6 minutes).
    pub const WRAP_NS: u64 = (1 << 32) * Self::UNIT_NS;

    /// The stamp of a packet sent at `now` (CLOCK_MONOTONIC nanoseconds).
    #[inline]
    pub fn at(now_ns: u64) -> SendStamp {
        // Modulo 2^32 units: the cast keeps the low bits.
        SendStamp((now_ns / Self::UNIT_NS) as u32)
    }

    /// The latency of a packet stamped `self` that arrives at `now_ns`, known to have been
    /// sent no earlier than `sent_after_ns` (when the sink's epoch began: every packet of its
    /// run was sent after that). `None` when the stamp cannot be read as one time in
    /// `sent_after_ns..=now_ns`: either a time one wrap earlier is also in it (the epoch is
    /// older than the wrap: the packet may be a whole period older than it looks), or no time
    /// is (a clock that is not the sink's, as across machines). Otherwise the time the unit
    /// leaves open is taken as its middle, so the latency is exact within half a unit (0.5
    /// us), and at least 1 ns.
    #[inline]
    pub fn latency_ns(self, now_ns: u64, sent_after_ns: u64) -> Option<u64> {
        StampReader::new(now_ns, sent_after_ns).latency_ns(self)
    }
}

/// Reads send times as [`SendStamp::latency_ns`] does, for one arrival time and one epoch:
/// what does not depend on the stamp is computed once (a sink makes one per batch of frames
/// it receives).
#[derive(Debug, Clone, Copy)]
pub struct StampReader {
    /// Whole units of `now`.
    now_units: u64,
    /// Nanoseconds of `now` past its last whole unit.
    now_part_ns: u64,
    /// Whole units from the unit `sent_after` lies in to `now`'s.
    span_units: u64,
}

impl StampReader {
    /// For packets arriving at `now_ns`, each sent no earlier than `sent_after_ns`.
    #[inline]
    pub fn new(now_ns: u64, sent_after_ns: u64) -> StampReader {
        let now_units = now_ns / SendStamp::UNIT_NS;
        StampReader {
            now_units,
            now_part_ns: now_ns - now_units * SendStamp::UNIT_NS,
            span_units: now_units.saturating_sub(sent_after_ns / SendStamp::UNIT_NS),
        }
    }

    /// [`SendStamp::latency_ns`] of `stamp`.
    #[inline]
    pub fn latency_ns(self, stamp: SendStamp) -> Option<u64> {
        // The age of the latest send time the stamp can name (now_units - age): it must lie
        // in the epoch, and one wrap earlier must not.
        let age_units = u64::from((self.now_units as u32).wrapping_sub(stamp.0));
        if age_units > self.span_units || self.span_units - age_units >= 1 << 32 {
            return None;
        }
        // now - (the middle of the sending unit): now's part of its unit, plus the age.
        let latency = self.now_part_ns + age_units * SendStamp::UNIT_NS;
        Some(latency.saturating_sub(SendStamp::UNIT_NS / 2).max(1))
    }
}

/// Why a data packet that reached its sink is counted as corrupted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("header does not match the frame: {0}")]
    Header(String),
    #[error("payload CRC32 {computed:#010x} differs from the header's {declared:#010x}")]
    Crc { declared: u32, computed: u32 },
    #[error("hop trace {trace:?} from {origin} is no route to this node: {fault}")]
    Trace {
        origin: NodeId,
        trace: Vec<NodeId>,
        /// Which rule of the sink's check it breaks (`routing::RouteFault`).
        fault: String,
    },
    #[error("hop trace overflowed its {slots} slots")]
    TraceOverflow { slots: usize },
    /// A keyed packet whose key is not one of this overlay's (its width or value).
    #[error("key {0}")]
    Key(String),
}

/// The parameters every data frame of one run shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataShape {
    /// Relay slots in each frame's trace (set by the registry per overlay).
    pub trace_slots: usize,
    /// Bytes of each trace slot: 1, 2 or 4 ([`slot_bytes_for`] the registry's ID space; set
    /// by the registry per overlay). The classic format's trace IDs are always 4 bytes.
    pub slot_bytes: usize,
    /// Payload bytes after the 4-byte value.
    pub extra_payload_bytes: usize,
    /// The run, as its data frames carry it: the node's count of final reports since the
    /// manifest (the acks' epoch) modulo [`RUN_TAGS`], so that a sink tells a packet of an
    /// earlier run (stale: counted apart and dropped) from one of this run. The native
    /// encoding carries it in spare bits of the header's flags; the classic one has no room.
    pub run_tag: u8,
}

/// Distinct run tags in a data frame: a packet is taken for one of the current run only if
/// it is a multiple of this many runs late, which no packet lives to be.
pub const RUN_TAGS: u32 = 16;

/// No trace slots, 4-byte slots (the widest), no extra payload, run tag 0.
impl Default for DataShape {
    fn default() -> Self {
        DataShape {
            trace_slots: 0,
            slot_bytes: 4,
            extra_payload_bytes: 0,
            run_tag: 0,
        }
    }
}

/// Bytes of a native trace slot in an overlay whose node IDs are drawn from `0..2^id_bits`
/// (`id_bits` 1..=32): the fewest of 1, 2 or 4 bytes that hold every such ID (a registry's
/// ID space is fixed for its life, so every ID it ever gives out fits).
pub fn slot_bytes_for(id_bits: u32) -> usize {
    match id_bits {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

/// Whether node `id` fits a trace slot of `slot_bytes` bytes (1, 2 or 4).
pub fn fits_slot(id: NodeId, slot_bytes: usize) -> bool {
    slot_bytes >= 4 || u64::from(id) < 1u64 << (8 * slot_bytes)
}

impl DataShape {
    /// The tag of the run after `epoch` final reports.
    pub fn run_tag_of(epoch: u32) -> u8 {
        (epoch % RUN_TAGS) as u8
    }
}

/// An encoding of frames. Implementations are stateless.
///
/// The data plane: [`Codec::frame_len`] finds a whole frame, [`Codec::peek`] checks it once
/// and returns a view ([`DataFrame`], [`Ack`]); relaying ([`Codec::append_relayed`]) and the
/// sink's checks ([`Codec::check_delivered`]) take that view, and cannot fail on the layout.
pub trait Codec: Sized {
    /// A short name for logs and `--wire`.
    const NAME: &'static str;

    /// The data plane carries acknowledgements, so a source can be held to a window. Without
    /// them the registry sends a manifest with no window (0) and nothing calls
    /// [`Codec::append_ack`].
    const HAS_ACKS: bool = true;

    /// A summary request can leave the counters alone (a progress poll). Without it every
    /// summary request is final (the node resets after answering), so the registry cannot poll
    /// and ends a run by a settle time instead.
    const PROGRESS_POLLS: bool = true;

    /// Peers may be written by others to a loosely defined format: a task-finished or
    /// deregistration message is identified by the connection it arrives on and its node ID,
    /// and a port that differs from the registered one is logged, not refused (the IP is
    /// always checked).
    const LOOSE_PORTS: bool = false;

    /// Whether traffic summaries carry hop counts and latency histograms.
    const HAS_STATS: bool = true;

    /// Every connection starts with a hello from the connector (and, with a shared secret,
    /// the handshake of `crate::auth`), and a side that closes a connection says why
    /// ([`Control::Refused`]). Without it (the classic format) connections start with their
    /// first request or data packet, and closes are silent.
    const HELLO: bool = true;

    /// Data frames can say that they were routed around a dead link ([`Codec::mark_detoured`]),
    /// so nodes keep backup entries and route around dead links. Without it (the classic
    /// format) a packet whose link is dead is dropped, as the reference does.
    const DETOURS: bool = true;

    /// The encoding has keyed data frames ([`Peek::Keyed`]: packets routed by a key, not a
    /// node ID). Without them no keyed view is ever made, the keyed functions below are never
    /// called, and the registry refuses runs addressed to keys.
    const KEYED: bool = false;

    /// Offset of a data frame's hop trace: one slot per relay ID from here
    /// ([`DataFrame::slot_bytes`] each).
    const TRACE_AT: usize;

    /// The largest node ID the encoding carries.
    const ID_MAX: NodeId;

    /// A node ID from a trace slot (1, 2 or 4 bytes, as [`DataFrame::slot_bytes`] says) as this
    /// encoding writes it.
    fn read_slot(slot: &[u8]) -> NodeId;

    /// Whether `message` can be expressed in this encoding (fields beyond the format's
    /// ranges, a progress poll without [`Codec::PROGRESS_POLLS`], extra payload the format
    /// has no room for). Callers check before sending anything a peer asked for;
    /// [`Codec::encode_control`] of a message refused here is a bug, and it encodes nothing.
    fn encodable(message: &Control) -> Result<(), WireError> {
        let _ = message;
        Ok(())
    }

    /// What a side speaking this format sends, in the other format, to a peer whose first
    /// frame was of the other format ([`WireError::OtherFormat`]) before it closes the
    /// connection, so that the peer says why rather than guess: a native peer gets a refusal
    /// ([`Refusal::ClassicWire`]), a classic one a failed registration status naming the
    /// format, which classic nodes written by others print too.
    fn farewell_to_the_other_format() -> Vec<u8>;

    /// The source of the data frame at the front of `bytes` if it is one for `sink` and its
    /// header is there; `None` otherwise, or when the codec does not say. Unchecked: only to
    /// ask for the source's counts ahead of the frame's delivery (`io::prefetch`), never to
    /// decide anything.
    #[inline]
    fn source_if_for(bytes: &[u8], sink: NodeId) -> Option<NodeId> {
        let _ = (bytes, sink);
        None
    }

    /// Length of the whole frame at the front of `bytes`, once its length field is there:
    /// `Ok(None)` means more bytes are needed. Refuses a declared length outside the bound
    /// before anything is buffered.
    fn frame_len(bytes: &[u8]) -> Result<Option<usize>, WireError>;

    /// Classifies a whole frame and, for data and acks, checks that its routed header is
    /// consistent with its length: the view it returns can be relayed and read without
    /// further checks.
    fn peek(frame: &[u8]) -> Result<Peek<'_, Self>, WireError>;

    /// Appends `frame` to `out` as relay `self_id` forwards it: its trace gains `self_id` (or,
    /// with no slot left, the overflow flag). Acks are forwarded unchanged ([`Ack::bytes`]).
    fn append_relayed(frame: &DataFrame<'_, Self>, self_id: NodeId, out: &mut Vec<u8>);

    /// How many bytes at the front of `frame` relaying it may change ([`Codec::append_relayed`]):
    /// the rest goes on unchanged, so a relay may send it from where it arrived. `None` (the
    /// default): relaying may change any of it.
    fn relayed_head(frame: &DataFrame<'_, Self>) -> Option<usize> {
        let _ = frame;
        None
    }

    /// Appends the first `head` bytes of `frame` (at least [`Codec::relayed_head`]) as
    /// [`Codec::append_relayed`] changes them; only called where `relayed_head` is `Some`.
    fn append_relayed_head(
        frame: &DataFrame<'_, Self>,
        self_id: NodeId,
        head: usize,
        out: &mut Vec<u8>,
    ) {
        let _ = (frame, self_id, head, out);
        unreachable!("the {} format relays frames whole", Self::NAME)
    }

    /// Appends a new data packet to `out`; `payload` is the value (4 little-endian bytes) then
    /// the extra bytes. Returns the frame's length.
    fn append_data(
        out: &mut Vec<u8>,
        source: NodeId,
        sink: NodeId,
        shape: DataShape,
        send_time_ns: u64,
        payload: &[u8],
    ) -> usize {
        let crc = native::crc32(payload);
        Self::append_data_with_crc(out, source, sink, shape, send_time_ns, payload, crc)
    }

    /// [`Codec::append_data`] with the payload's CRC32 already known (origination computes
    /// it with a [`PayloadCrc`]); an encoding without a CRC ignores it.
    fn append_data_with_crc(
        out: &mut Vec<u8>,
        source: NodeId,
        sink: NodeId,
        shape: DataShape,
        send_time_ns: u64,
        payload: &[u8],
        payload_crc: u32,
    ) -> usize;

    /// Whether a data frame that reached its sink belongs to the run `shape` describes: false
    /// for a packet of an earlier run (its run tag differs), which the sink counts as stale
    /// and drops. An encoding with no run tag takes every packet for the current run's.
    #[inline]
    fn of_run(frame: &DataFrame<'_, Self>, shape: DataShape) -> bool {
        let _ = (frame, shape);
        true
    }

    /// Makes `frame`, a copy of a frame [`Codec::append_data_with_crc`] built with the same
    /// source, `shape`, send time and extra payload, a packet to `sink` with the value `value`
    /// (the payload's first 4 bytes) and the payload CRC `payload_crc`: origination builds one
    /// frame per batch and copies it for each packet, rather than building each. `frame` may
    /// run on past the frame's end (a fixed-size buffer holding it): the fields are found
    /// from its start and the shape.
    fn set_originated(
        frame: &mut [u8],
        shape: DataShape,
        sink: NodeId,
        value: [u8; 4],
        payload_crc: u32,
    );

    /// The sink's checks of a data frame: its trace capacity and slot width against the
    /// overlay's, the overflow flag, the CRC. The sink then checks that the trace is a route to it
    /// (`routing::Router::check_route`).
    fn check_delivered(
        frame: &DataFrame<'_, Self>,
        shape: DataShape,
    ) -> Result<Delivered, Corruption>;

    /// Marks a whole data frame (as queued for a link) as routed around a dead link; leaves
    /// anything else alone. Only called when [`Codec::DETOURS`].
    fn mark_detoured(frame: &mut [u8]) {
        let _ = frame;
    }

    /// The key of a keyed data frame (big-endian, as many bytes as `peek` found between its
    /// trace and its payload: 1 to 20).
    fn key<'a>(frame: &DataFrame<'a, Self>) -> &'a [u8] {
        let _ = frame;
        unreachable!("the {} format has no keyed frames", Self::NAME)
    }

    /// Appends a new keyed data packet for `key` (big-endian bytes) to `out`, as
    /// [`Codec::append_data_with_crc`] does a node-addressed one. Returns the frame's length.
    #[allow(clippy::too_many_arguments)]
    fn append_keyed_with_crc(
        out: &mut Vec<u8>,
        source: NodeId,
        key: &[u8],
        shape: DataShape,
        send_time_ns: u64,
        payload: &[u8],
        payload_crc: u32,
    ) -> usize {
        let _ = (out, source, key, shape, send_time_ns, payload, payload_crc);
        unreachable!("the {} format has no keyed frames", Self::NAME)
    }

    /// [`Codec::check_delivered`] for a keyed data frame at its key's owner (its payload
    /// follows the key).
    fn check_keyed_delivered(
        frame: &DataFrame<'_, Self>,
        shape: DataShape,
    ) -> Result<Delivered, Corruption> {
        let _ = (frame, shape);
        unreachable!("the {} format has no keyed frames", Self::NAME)
    }

    /// Appends a lookup (a keyed frame of its own kind, never counted as a packet) from
    /// `asker` for `key` with the trace of `shape` (its slots and their width; the rest of
    /// the shape is not used), numbered `number` by the asker.
    fn append_lookup(
        out: &mut Vec<u8>,
        asker: NodeId,
        key: &[u8],
        shape: DataShape,
        number: u32,
        send_time_ns: u64,
    ) {
        let _ = (out, asker, key, shape, number, send_time_ns);
        unreachable!("the {} format has no lookups", Self::NAME)
    }

    /// Appends the reply of `owner` (listening at `owner_addr`) to `lookup`, routed to its
    /// asker by node ID and carrying the lookup's trace and number.
    fn append_lookup_reply(
        out: &mut Vec<u8>,
        lookup: &DataFrame<'_, Self>,
        owner: NodeId,
        owner_addr: std::net::SocketAddr,
    ) {
        let _ = (out, lookup, owner, owner_addr);
        unreachable!("the {} format has no lookups", Self::NAME)
    }

    /// A lookup reply's number and the owner's address.
    fn lookup_reply(frame: &DataFrame<'_, Self>) -> (u32, std::net::SocketAddr) {
        let _ = frame;
        unreachable!("the {} format has no lookups", Self::NAME)
    }

    /// Appends an acknowledgement from `source` (a sink) to `sink` (the packets' source).
    fn append_ack(out: &mut Vec<u8>, source: NodeId, sink: NodeId, epoch: u32, acked_bytes: u64);

    /// Appends a control message.
    fn encode_control(message: &Control, out: &mut Vec<u8>);

    /// Decodes a whole control frame.
    fn decode_control(frame: &[u8]) -> Result<Control, WireError>;
}

//! Checked views of frames (smoltcp's `Packet` after `check_len`): [`Codec::peek`] checks a
//! whole frame once and returns a [`Peek`]; a [`DataFrame`] or an [`Ack`] in it is proof that
//! the frame's header agrees with its length, so relaying, delivering and reading it cannot
//! fail, and its fields are read once.

use std::fmt;
use std::marker::PhantomData;

use zerocopy::IntoBytes;

use super::native::AckFrame;
use super::{Codec, NodeId};

/// A whole frame, classified and checked by [`Codec::peek`].
///
/// `repr(u8)`: an explicit tag, so that telling the variants apart is one compare (with the
/// tag in [`DataFrame::overflowed`]'s spare values it took six instructions per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Peek<'a, C: Codec> {
    /// A data packet: routed by its sink, counted, checked at the sink.
    Data(DataFrame<'a, C>),
    /// A keyed data packet: routed by its key ([`Codec::key`]; its `sink` is 0), counted,
    /// checked at the key's owner as a data packet is at its sink (native only).
    Keyed(DataFrame<'a, C>),
    /// A lookup: routed by its key as a keyed packet is, answered by the key's owner, never
    /// counted (native only).
    Lookup(DataFrame<'a, C>),
    /// A lookup's reply: routed to its asker (`sink`) by node ID and relayed unchanged, as
    /// an ack is; its trace is the lookup's path (native only).
    LookupReply(DataFrame<'a, C>),
    /// A flow-control acknowledgement: routed like data, never counted.
    Ack(Ack<'a>),
    /// A control message between a node and the registry (decoded by
    /// [`Codec::decode_control`]).
    Control,
}

/// A data frame whose routed header is consistent with its length: its trace holds
/// `relays() <= trace_slots()` IDs, and one more relay can be recorded (or flagged as an
/// overflow) without any further check. Only a codec's `peek` makes one.
pub struct DataFrame<'a, C: Codec> {
    bytes: &'a [u8],
    sink: NodeId,
    source: NodeId,
    /// u16: the classic format's traces stay below `classic::TRACE_LEN_MAX` (16k).
    relays: u16,
    trace_slots: u16,
    /// Bytes per trace slot: 1, 2 or 4.
    slot_bytes: u8,
    overflowed: bool,
    codec: PhantomData<fn() -> C>,
}

impl<'a, C: Codec> DataFrame<'a, C> {
    /// For the codecs' `peek`, once they have checked that `slot_bytes` is 1, 2 or 4, that the
    /// trace (`trace_slots` slots of `slot_bytes` from [`Codec::TRACE_AT`]) lies within
    /// `bytes` and `relays <= trace_slots`.
    #[inline]
    pub(super) fn checked(
        bytes: &'a [u8],
        sink: NodeId,
        source: NodeId,
        (relays, trace_slots, slot_bytes): (u16, u16, u8),
        overflowed: bool,
    ) -> Self {
        debug_assert!(relays <= trace_slots);
        debug_assert!(matches!(slot_bytes, 1 | 2 | 4));
        debug_assert!(C::TRACE_AT + usize::from(slot_bytes) * trace_slots as usize <= bytes.len());
        DataFrame {
            bytes,
            sink,
            source,
            relays,
            trace_slots,
            slot_bytes,
            overflowed,
            codec: PhantomData,
        }
    }

    /// The whole frame, length prefix included.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The node the packet is for.
    #[inline]
    pub fn sink(&self) -> NodeId {
        self.sink
    }

    /// The node that originated it (the classic format's i32 as its 32 bits: a negative one
    /// reads above [`Codec::ID_MAX`], and the sink counts it as corrupted).
    #[inline]
    pub fn source(&self) -> NodeId {
        self.source
    }

    /// Relays recorded in the trace.
    #[inline]
    pub fn relays(&self) -> usize {
        self.relays as usize
    }

    /// Relay slots of the trace (native: fixed per overlay; classic: the trace grows, so as
    /// many as relays).
    #[inline]
    pub fn trace_slots(&self) -> usize {
        self.trace_slots as usize
    }

    /// Bytes of each trace slot: 1, 2 or 4 (native: the frame's flags say, the same for every
    /// frame of an overlay; classic: 4).
    #[inline]
    pub fn slot_bytes(&self) -> usize {
        usize::from(self.slot_bytes)
    }

    /// A relay found no free trace slot (native only).
    #[inline]
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The relays recorded in the trace, in order.
    pub fn trace(&self) -> impl Iterator<Item = NodeId> + Clone + 'a {
        self.trace_bytes()
            .chunks_exact(self.slot_bytes())
            .map(|slot| C::read_slot(slot))
    }

    /// The node that put the frame on the link it arrived on: its last relay, or its source if
    /// it has none (`None` if the trace overflowed, or the ID is not one the encoding has).
    #[inline]
    pub fn previous_hop(&self) -> Option<NodeId> {
        if self.overflowed {
            return None;
        }
        let id = match self.relays() {
            0 => self.source,
            relays => {
                let width = self.slot_bytes();
                let at = C::TRACE_AT + width * (relays - 1);
                C::read_slot(&self.bytes[at..at + width])
            }
        };
        (id <= C::ID_MAX).then_some(id)
    }

    #[inline]
    fn trace_bytes(&self) -> &'a [u8] {
        &self.bytes[C::TRACE_AT..C::TRACE_AT + self.slot_bytes() * self.relays()]
    }
}

impl<C: Codec> Clone for DataFrame<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Codec> Copy for DataFrame<'_, C> {}

/// Every field is read from the bytes: equal bytes are equal frames.
impl<C: Codec> PartialEq for DataFrame<'_, C> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<C: Codec> Eq for DataFrame<'_, C> {}

impl<C: Codec> fmt::Debug for DataFrame<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataFrame")
            .field("codec", &C::NAME)
            .field("bytes", &self.bytes.len())
            .field("source", &self.source)
            .field("sink", &self.sink)
            .field("relays", &self.relays)
            .field("trace_slots", &self.trace_slots)
            .field("slot_bytes", &self.slot_bytes)
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

/// A flow-control acknowledgement of the right length (native only: the classic format has
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    frame: &'a AckFrame,
}

impl<'a> Ack<'a> {
    #[inline]
    pub(super) fn checked(frame: &'a AckFrame) -> Self {
        Ack { frame }
    }

    /// The whole frame (relays forward it unchanged).
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.frame.as_bytes()
    }

    /// The sink that acknowledges.
    #[inline]
    pub fn source(&self) -> NodeId {
        self.frame.source.get()
    }

    /// The source whose packets are acknowledged: the node the ack is routed to.
    #[inline]
    pub fn sink(&self) -> NodeId {
        self.frame.sink.get()
    }

    /// Final reports since the manifest, at the acknowledging sink.
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.frame.epoch.get()
    }

    /// Frame bytes the sink received from the source in this run, cumulative.
    #[inline]
    pub fn acked_bytes(&self) -> u64 {
        self.frame.acked_bytes.get()
    }
}

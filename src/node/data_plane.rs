//! The data plane: every frame a data link brings is relayed toward its sink
//! ([`Overlay::relay`]), delivered here ([`Overlay::deliver`]) or, for an ack addressed here,
//! opens the window ([`Overlay::on_ack`]). Nothing here waits or can fail on a frame `peek`
//! accepted (docs/ARCHITECTURE.md, "Flow control": always read, always relay).

use super::Node;
use super::links::{LinkPeer, Step};
use super::overlay::{Link, Overlay};
use crate::machine::{ConnId, Effect, Nanos};
use crate::wire::{Ack, Codec, Corruption, DataFrame, NodeId, Peek};

/// Data frames found in one batch of bytes from a link.
#[derive(Debug, Clone, Copy)]
struct DataFrames {
    count: u64,
    /// The previous hop of the first of them, if the link has not seen data before (`None`
    /// inside: the first one names no node, see [`LinkPeer`]).
    first_previous_hop: Option<Option<NodeId>>,
}

/// A frame a relay forwards: a data packet (its trace gains this node) or an ack (unchanged).
enum Relayed<'a, C: Codec> {
    Data(&'a DataFrame<'a, C>),
    Ack(&'a Ack<'a>),
}

impl<C: Codec> Node<C> {
    /// Bytes from a link other than the registry's: its handshake first, then data frames.
    pub(super) fn on_data_bytes(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        match self.handshake(conn, bytes) {
            Step::Through => self.on_data_frames(now, conn, bytes),
            Step::Waiting => 0,
            Step::Took(used) if used == bytes.len() => used,
            Step::Took(used) => used + self.on_data_frames(now, conn, &bytes[used..]),
            Step::Answered(used) => used,
            Step::Closed => bytes.len(),
        }
    }

    fn on_data_frames(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        if self.phase.id().is_none() {
            self.close(conn, "data arrived before this node registered".into());
            return bytes.len();
        }
        let Some(overlay) = self.overlay.as_mut() else {
            self.close(
                conn,
                "data arrived before the overlay was set up; closing that connection".into(),
            );
            return bytes.len();
        };
        // The peer is looked up before routing: a bad frame may close the link midway, and
        // the frames before it still count.
        let peer = self
            .connections
            .get(&conn)
            .map_or(LinkPeer::Unnamed, |c| c.peer);
        let mut data = DataFrames {
            count: 0,
            first_previous_hop: None,
        };
        let routed = overlay.route_frames(&mut self.effects, now, bytes, &mut data);
        if data.count > 0 {
            self.count_received(conn, peer, data);
        }
        match routed {
            Ok(consumed) => consumed,
            Err(why) => {
                self.close(conn, why);
                bytes.len()
            }
        }
    }

    /// Adds `data` to the count of the node at the other end of `conn` (`peer`, or named now
    /// by the first of them: [`LinkPeer`]).
    fn count_received(&mut self, conn: ConnId, peer: LinkPeer, data: DataFrames) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let peer = match (peer, data.first_previous_hop) {
            (LinkPeer::Unknown, Some(previous_hop)) => {
                let named = match previous_hop {
                    Some(node) if overlay.holds_me_in_table(node) => LinkPeer::Node(node),
                    _ => LinkPeer::Unnamed,
                };
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.peer = named;
                }
                named
            }
            (peer, _) => peer,
        };
        let count = match peer {
            LinkPeer::Node(node) => overlay.received_from.entry(node).or_default(),
            LinkPeer::Unnamed | LinkPeer::Unknown => &mut overlay.received_unnamed,
        };
        *count = count.saturating_add(data.count);
    }
}

impl<C: Codec> Overlay<C> {
    /// Delivers, relays or takes every whole frame of `bytes`; counts data frames in `data`.
    /// Returns the bytes consumed, or why the link must close (a bad frame: the frames before
    /// it were handled).
    fn route_frames(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        bytes: &[u8],
        data: &mut DataFrames,
    ) -> Result<usize, String> {
        let mut offset = 0;
        loop {
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(offset),
                Err(error) => return Err(format!("bad frame from a peer: {error}")),
            };
            let frame = &bytes[offset..offset + len];
            offset += len;
            // Matched by reference: the view is read where `peek` put it, not copied.
            match &C::peek(frame) {
                Ok(Peek::Data(data_frame)) => {
                    if data.count == 0 {
                        data.first_previous_hop = Some(data_frame.previous_hop());
                    }
                    data.count += 1;
                    if data_frame.sink() == self.id {
                        self.deliver(effects, now, data_frame);
                    } else {
                        self.relay(effects, data_frame.sink(), Relayed::Data(data_frame));
                    }
                }
                Ok(Peek::Ack(ack)) if ack.sink() == self.id => self.on_ack(effects, ack),
                Ok(Peek::Ack(ack)) => self.relay(effects, ack.sink(), Relayed::Ack(ack)),
                Ok(Peek::Control) => {
                    return Err("a peer sent a control message on a data link".into());
                }
                Err(error) => return Err(format!("bad frame from a peer: {error}")),
            }
        }
    }

    /// The relay path: appends `frame` to the pending bytes of the table entry toward `sink`.
    #[inline(always)]
    fn relay(&mut self, effects: &mut Vec<Effect>, sink: NodeId, frame: Relayed<'_, C>) {
        let data = matches!(frame, Relayed::Data(_));
        let Some(index) = self.router.next_hop(sink) else {
            if data {
                self.counters.dropped += 1;
            }
            self.problem(effects, format!("dropped a packet for unknown node {sink}"));
            return;
        };
        let entry = &mut self.entries[index];
        if entry.link != Link::Up {
            if data {
                self.counters.dropped += 1;
            }
            return;
        }
        if entry.pending.is_empty() {
            effects.push(Effect::Send(entry.conn));
        }
        match frame {
            Relayed::Data(frame) => C::append_relayed(frame, self.id, &mut entry.pending),
            Relayed::Ack(ack) => entry.pending.extend_from_slice(ack.bytes()),
        }
        if data {
            self.counters.relayed += 1;
            entry.packets_out += 1;
        }
    }

    /// The delivery path: the sink's checks (layout, CRC, the trace against the route from
    /// the source), the counters and histograms, and an ack when one is due.
    fn deliver(&mut self, effects: &mut Vec<Effect>, now: Nanos, frame: &DataFrame<'_, C>) {
        // Plain matches rather than combinators: the checked fields stay in registers (a
        // `Result` of them built in memory and read back cost a store-forwarding stall).
        let delivered = match C::check_delivered(frame, self.shape) {
            Ok(delivered) => delivered,
            Err(corruption) => return self.corrupted(effects, corruption),
        };
        let position = self.router.position(delivered.source);
        let expected = position.and_then(|p| self.router.expected_relays_from_position(p));
        let (Some(position), Some(expected)) = (position, expected) else {
            return self.wrong_trace(effects, frame, delivered.source, None);
        };
        if !frame.trace_is(expected) {
            let expected = expected.to_vec();
            return self.wrong_trace(effects, frame, delivered.source, Some(expected));
        }
        self.counters.received += 1;
        // A send time of 0 means none (the classic format has no timestamp).
        let latency =
            (delivered.send_time_ns != 0).then(|| now.saturating_sub(delivered.send_time_ns));
        self.stats_since_poll.record(delivered.relays, latency);
        self.counters.sum_received = self
            .counters
            .sum_received
            .wrapping_add(i64::from(delivered.value));
        if let Some(acked) = self.flow.on_delivered(position, frame.bytes().len()) {
            let index = self
                .router
                .next_hop(delivered.source)
                .expect("source is another node");
            let entry = &mut self.entries[index];
            if entry.link == Link::Up {
                if entry.pending.is_empty() {
                    effects.push(Effect::Send(entry.conn));
                }
                C::append_ack(
                    &mut entry.pending,
                    self.id,
                    delivered.source,
                    self.flow.epoch,
                    acked,
                );
            }
        }
    }

    /// A packet whose trace is not the route from its source (`expected`, if the source is
    /// known): the trace is copied out only to say how it differs.
    #[cold]
    fn wrong_trace(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &DataFrame<'_, C>,
        origin: NodeId,
        expected: Option<Vec<NodeId>>,
    ) {
        let corruption = Corruption::Trace {
            origin,
            trace: frame.trace().collect(),
            expected: expected.unwrap_or_default(),
        };
        self.corrupted(effects, corruption);
    }

    #[cold]
    fn corrupted(&mut self, effects: &mut Vec<Effect>, corruption: Corruption) {
        self.counters.corrupted += 1;
        self.problem(effects, format!("corrupted packet: {corruption}"));
    }

    /// An ack addressed to this node: the window of its packets to the ack's source opens.
    fn on_ack(&mut self, effects: &mut Vec<Effect>, ack: &Ack<'_>) {
        let (from, epoch, acked) = (ack.source(), ack.epoch(), ack.acked_bytes());
        match self.router.position(from) {
            Some(position) => {
                if !self.flow.on_ack(position, epoch, acked) {
                    tracing::debug!("ignored ack from {from} (epoch {epoch}, {acked} bytes)");
                }
            }
            None => self.problem(effects, format!("ack from unknown node {from}")),
        }
    }
}

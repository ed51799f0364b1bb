//! The data plane: every frame a data link brings is relayed toward its sink
//! ([`Overlay::relay`]), delivered here ([`Overlay::deliver`]) or, for an ack addressed here,
//! opens the window ([`Overlay::on_ack`]). Nothing here waits or can fail on a frame `peek`
//! accepted (docs/ARCHITECTURE.md, "Flow control": always read, always relay).

use super::Node;
use super::links::{LinkPeer, Step};
use super::overlay::{Around, Link, Overlay, route_around};
use super::shares::{Admit, Batch};
use crate::chord;
use crate::io::prefetch::{read_ahead, write_ahead};
use crate::limits::HELD_FRAME_BYTES_MIN;
use crate::machine::{ConnId, Effect, Hole, Lent, Nanos};
use crate::routing::RouteFault;
use crate::wire::native::ACK_FRAME_BYTES;
use crate::wire::{Ack, Codec, Corruption, DataFrame, NodeId, Peek, SendStamp, StampReader};

/// Data frames found in one batch of bytes from a link.
#[derive(Debug, Clone, Copy)]
struct DataFrames {
    count: u64,
    /// The previous hop of the first of them, if the link has not seen data before (`None`
    /// inside: the first one names no node, see [`LinkPeer`]).
    first_previous_hop: Option<Option<NodeId>>,
}

/// Why a link's bytes end its connection.
pub(super) enum Stop {
    /// A frame no honest peer sends.
    Bad(String),
    /// The link asked for more to be queued than honest traffic can ([`Admit::Cut`]).
    Cut,
}

/// The link whose bytes are being routed asked for more to be queued than honest traffic can
/// ([`Stop::Cut`]): what the relay and delivery paths return, one bit rather than a `Stop`
/// (whose message would make every frame's result a test of a `String`'s niche).
pub(super) struct Cut;

impl From<Cut> for Stop {
    fn from(_: Cut) -> Stop {
        Stop::Cut
    }
}

/// A frame a relay forwards: a data packet (its trace gains this node, and it is counted; in a
/// buffer the driver lent, if any), a lookup (its trace gains this node), or an ack or a
/// lookup reply (unchanged).
pub(super) enum Relayed<'a, C: Codec> {
    Data(&'a DataFrame<'a, C>, Option<&'a Lent<'a>>),
    Lookup(&'a DataFrame<'a, C>),
    Verbatim(&'a [u8]),
}

impl<C: Codec> Node<C> {
    /// Bytes from a link other than the registry's: its handshake first, then data frames.
    /// `lent`: the driver's buffer `bytes` lie in, if it lends it (relays then hold large
    /// frames' unchanged parts instead of copying them).
    pub(super) fn on_data_bytes(
        &mut self,
        now: Nanos,
        conn: ConnId,
        bytes: &[u8],
        lent: Option<&Lent<'_>>,
    ) -> usize {
        match self.handshake(now, conn, bytes) {
            Step::Through => self.on_data_frames(now, conn, bytes, lent),
            Step::Waiting => 0,
            Step::Took(used) if used == bytes.len() => used,
            Step::Took(used) => used + self.on_data_frames(now, conn, &bytes[used..], lent),
            Step::Answered(used) => used,
            Step::Closed => bytes.len(),
        }
    }

    fn on_data_frames(
        &mut self,
        now: Nanos,
        conn: ConnId,
        bytes: &[u8],
        lent: Option<&Lent<'_>>,
    ) -> usize {
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
        let mut share = overlay.shares.of(conn);
        let routed = overlay.route_frames(
            &mut self.effects,
            now,
            (bytes, lent),
            conn,
            &mut share,
            &mut data,
        );
        overlay.shares.set(conn, share);
        let draining = overlay.leaving.drain.is_some();
        if data.count > 0 {
            self.count_received(conn, peer, data);
        }
        self.report_lookups();
        if draining {
            self.check_leaving();
        }
        match routed {
            Ok(consumed) => consumed,
            Err(Stop::Bad(why)) => {
                self.close(conn, why);
                bytes.len()
            }
            Err(Stop::Cut) => {
                self.cut(conn, share);
                bytes.len()
            }
        }
    }

    /// `conn` asked this node to queue more than the most honest traffic can (it has `share`
    /// bytes queued): it is cut, counted, and named in a warning (`crate::warnings`).
    #[cold]
    fn cut(&mut self, conn: ConnId, share: usize) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        overlay.shares.links_cut += 1;
        overlay.counters.links_cut += 1;
        let why = format!(
            "it asked this node to queue more than {} bytes of packets to relay ({share} \
             queued for it), more than all sources' windows together hold, so it is no honest \
             node's link; cut ({} links cut since the overlay was set up)",
            overlay.shares.bound, overlay.shares.links_cut
        );
        self.close(conn, why);
    }

    /// Adds `data` to the count of the node at the other end of `conn` (`peer`, or named now
    /// by the first of them: [`LinkPeer`]).
    fn count_received(&mut self, conn: ConnId, peer: LinkPeer, data: DataFrames) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let peer = match (peer, data.first_previous_hop) {
            (LinkPeer::Unknown, Some(previous_hop)) => {
                // Checked against the nodes that held this one when counts are reported
                // (`Overlay::link_counts`): a link of a newer membership may come first.
                let named = match previous_hop {
                    Some(node) => LinkPeer::Node(node),
                    None => LinkPeer::Unnamed,
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
    /// Delivers, relays or takes every whole frame of `bytes` from `link` (which has `share`
    /// bytes queued on its behalf, updated here); counts data frames in `data`. Returns the
    /// bytes consumed, or why the link must close (the frames before that were handled).
    /// `lent`: the buffer `bytes` lie in, if the driver lends it. What the batch queues is
    /// recorded as `link`'s once, at its end ([`Overlay::open_batch`], [`Batch`]).
    fn route_frames(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        bytes: (&[u8], Option<&Lent<'_>>),
        link: ConnId,
        share: &mut usize,
        data: &mut DataFrames,
    ) -> Result<usize, Stop> {
        self.open_batch();
        let mut batch = self.shares.open_batch(*share);
        // The send times of the batch's deliveries are read against one arrival time.
        self.stamps = StampReader::new(now, self.flow.epoch_began_at);
        let routed = self.route_batch(effects, now, bytes, &mut batch, data);
        self.shares.close_batch(batch, share);
        self.close_batch(link);
        routed
    }

    /// [`Overlay::route_frames`] within one batch: everything it queues is on behalf of the
    /// batch's link (`batch`).
    #[inline(always)]
    fn route_batch(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        (bytes, lent): (&[u8], Option<&Lent<'_>>),
        batch: &mut Batch,
        data: &mut DataFrames,
    ) -> Result<usize, Stop> {
        // Walked as the bytes not yet routed: `frame_len` checks the frame lies within them,
        // so taking it off their front needs no further check.
        let mut rest = bytes;
        let look_ahead = self.flow.prefetches();
        loop {
            let len = match C::frame_len(rest) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(bytes.len() - rest.len()),
                Err(error) => return Err(Stop::Bad(format!("bad frame from a peer: {error}"))),
            };
            let (frame, tail) = rest.split_at(len);
            rest = tail;
            read_ahead(rest);
            // The next frame's source counts, if it is delivered here, asked for while this
            // one is handled: in a large overlay they are cold (docs/SCALE.md).
            if look_ahead
                && let Some(source) = C::source_if_for(rest, self.id)
                && let Some(position) = self.router.position(source)
            {
                self.flow.prefetch(position);
            }
            // Matched by reference: the view is read where `peek` put it, not copied (a copy
            // of it as a whole read the fields' separate stores back in wider loads).
            match &C::peek(frame) {
                Ok(Peek::Data(data_frame)) => {
                    if data.count == 0 {
                        data.first_previous_hop = Some(data_frame.previous_hop());
                    }
                    data.count += 1;
                    if data_frame.sink() == self.id {
                        self.deliver::<false>(effects, now, data_frame, batch)?;
                    } else {
                        self.relay_data(effects, data_frame, lent, batch)?;
                    }
                }
                Ok(Peek::Keyed(keyed)) => {
                    if data.count == 0 {
                        data.first_previous_hop = Some(keyed.previous_hop());
                    }
                    data.count += 1;
                    self.route_keyed(effects, now, keyed, batch)?;
                }
                Ok(Peek::Lookup(lookup)) => self.route_lookup(effects, lookup, batch)?,
                Ok(Peek::LookupReply(reply)) if reply.sink() == self.id => {
                    self.on_lookup_reply(effects, now, reply)
                }
                Ok(Peek::LookupReply(reply)) => {
                    let sink = reply.sink();
                    self.relay(effects, sink, Relayed::Verbatim(reply.bytes()), batch)?
                }
                Ok(Peek::Ack(ack)) if ack.sink() == self.id => self.on_ack(effects, ack),
                Ok(Peek::Ack(ack)) => {
                    self.relay(effects, ack.sink(), Relayed::Verbatim(ack.bytes()), batch)?
                }
                Ok(Peek::Control) => {
                    return Err(Stop::Bad(
                        "a peer sent a control message on a data link".into(),
                    ));
                }
                Err(error) => return Err(Stop::Bad(format!("bad frame from a peer: {error}"))),
            }
        }
    }

    /// The relay path of a data frame (`frame`, in the buffer `lent` if the driver lends it):
    /// when its next hop's link is up, the frame fits the batch's room and is small enough
    /// to be copied whole, it is appended there with no `Relayed` made; everything else goes
    /// through [`Overlay::relay`] out of line.
    #[inline(always)]
    fn relay_data(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &DataFrame<'_, C>,
        lent: Option<&Lent<'_>>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let bytes = frame.bytes().len();
        let id = self.id;
        if let Some(index) = self.router.next_hop(frame.sink())
            && bytes < HELD_FRAME_BYTES_MIN
            && batch.fits(bytes)
            && let Some(entry) = self.entries.get_mut(index)
            && entry.link == Link::Up
        {
            if entry.pending.is_empty() {
                effects.push(Effect::Send(entry.conn));
            }
            // Copied whole (a classic frame grows by its new trace entry): what the queue
            // gained is queued on behalf of the batch's link.
            let before = entry.pending.len();
            write_ahead(&entry.pending);
            C::append_relayed(frame, id, &mut entry.pending);
            batch.queued += entry.pending.len() - before;
            entry.packets_out += 1;
            self.counters.relayed += 1;
            return Ok(());
        }
        self.relay_data_otherwise(effects, frame, lent, batch)
    }

    /// [`Overlay::relay_data`] for a frame its fast path does not take.
    #[inline(never)]
    fn relay_data_otherwise(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &DataFrame<'_, C>,
        lent: Option<&Lent<'_>>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        self.relay(effects, frame.sink(), Relayed::Data(frame, lent), batch)
    }

    /// Whether `bytes` more may be queued on behalf of the batch's link: `Ok(true)` yes,
    /// `Ok(false)` no (dropped: the links together hold the bound; said once per episode),
    /// `Err` the link is cut. The caller adds what it queues to `batch.queued`.
    #[inline(always)]
    fn admit(
        &mut self,
        effects: &mut Vec<Effect>,
        batch: &mut Batch,
        bytes: usize,
    ) -> Result<bool, Cut> {
        if batch.fits(bytes) {
            return Ok(true);
        }
        self.admit_past_room(effects, batch, bytes)
    }

    /// [`Overlay::admit`] for a frame that does not fit in the batch's room: asked of
    /// [`Shares::admit`](super::shares::Shares::admit) with what the batch has queued.
    #[cold]
    #[inline(never)]
    fn admit_past_room(
        &mut self,
        effects: &mut Vec<Effect>,
        batch: &mut Batch,
        bytes: usize,
    ) -> Result<bool, Cut> {
        let share = batch.share + batch.queued;
        match self.shares.admit(share, batch.queued, bytes) {
            Admit::Queue => {
                self.shares.dropping = false;
                Ok(true)
            }
            Admit::Drop => {
                batch.room = 0;
                self.shares.frames_dropped += 1;
                self.counters.relay_bound_drops += 1;
                if !std::mem::replace(&mut self.shares.dropping, true) {
                    let line = format!(
                        "dropping frames to relay: {} bytes are queued on behalf of inbound \
                         links, more than honest traffic queues ({} bytes); some link is no \
                         honest node's",
                        self.shares.total + batch.queued,
                        self.shares.bound
                    );
                    self.problem(effects, line);
                }
                Ok(false)
            }
            Admit::Cut => Err(Cut),
        }
    }

    /// The relay path: appends `frame` to the pending bytes of the table entry toward `sink`,
    /// on behalf of the batch's link, if the bound on what links may have queued lets it
    /// (`shares.rs`).
    #[inline(always)]
    fn relay(
        &mut self,
        effects: &mut Vec<Effect>,
        sink: NodeId,
        frame: Relayed<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let Some(index) = self.router.next_hop(sink) else {
            if matches!(frame, Relayed::Data(..)) {
                if self.others.contains_key(&sink) {
                    // Its sink left the overlay since it was sent: only a lost node's packets
                    // can (a leaver had all of its own first), and they are lost with it:
                    // counted as handed to it, as on a dead link.
                    self.departed_sink(sink);
                    return Ok(());
                }
                self.counters.dropped += 1;
                self.problem(effects, format!("dropped a packet for unknown node {sink}"));
            } else {
                // An ack for a node that left (or never was): nothing waits for it.
                tracing::debug!("dropped an ack for unknown node {sink}");
            }
            return Ok(());
        };
        self.relay_on(effects, index, |_| sink, frame, batch)
    }

    /// Appends `frame` to the pending bytes of table entry `index`, on behalf of the batch's
    /// link, if the bound on what links may have queued lets it.
    /// When that entry's link is not up, the frame goes around it toward the node `target`
    /// names (its sink, or a keyed frame's owner): [`Overlay::relay_around`].
    #[inline(always)]
    pub(super) fn relay_on(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        target: impl FnOnce(&crate::routing::Router) -> NodeId,
        frame: Relayed<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        if self.entries[index].link != Link::Up {
            let target = target(&self.router);
            return self.relay_around(effects, target, frame, batch);
        }
        self.queue_relayed::<false>(effects, index, frame, batch)
    }

    /// [`Overlay::relay_on`] when the rule's entry is not up: the frame goes on as
    /// [`route_around`] says, marked as detoured. Out of line: never taken while every link
    /// is up, and kept off the relay loop's registers.
    #[cold]
    #[inline(never)]
    fn relay_around(
        &mut self,
        effects: &mut Vec<Effect>,
        target: NodeId,
        frame: Relayed<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let data = matches!(frame, Relayed::Data(..));
        match route_around::<C>(&self.router, &self.entries, target) {
            Around::Entry(other) => self.queue_relayed::<true>(effects, other, frame, batch),
            Around::LostWith(dead) => {
                // Its sink is dead: handed to the dead node's link, lost with it.
                if data {
                    self.entries[dead].packets_out += 1;
                }
                Ok(())
            }
            Around::Stuck => {
                // No live way on before the table changes (a massive failure): held, and
                // counted relayed (this node took it on; it goes on with the new table).
                if let Relayed::Data(frame, _) = frame {
                    let id = self.id;
                    let (bound, dropped) = (self.shares.bound, &mut self.counters.dropped);
                    if self
                        .stuck
                        .hold::<C>(bound, dropped, |stuck| C::append_relayed(frame, id, stuck))
                    {
                        self.counters.relayed += 1;
                    }
                }
                Ok(())
            }
        }
    }

    /// Queues `frame` for entry `index` (whose link is up), relayed (`DETOURED`: marked as
    /// routed around a dead link), if the bound on what links may have queued lets it.
    #[inline(always)]
    fn queue_relayed<const DETOURED: bool>(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        frame: Relayed<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let (data, bytes) = match frame {
            Relayed::Data(frame, _) => (true, frame.bytes().len()),
            Relayed::Lookup(frame) => (false, frame.bytes().len()),
            Relayed::Verbatim(bytes) => (false, bytes.len()),
        };
        let admitted = self.admit(effects, batch, bytes);
        if !matches!(admitted, Ok(true)) {
            // Taken from the link and not handed on: dropped, whether the link is cut or not.
            if data {
                self.counters.dropped += 1;
            }
            return admitted.map(|_| ());
        }
        let id = self.id;
        let entry = &mut self.entries[index];
        if entry.pending.is_empty() {
            effects.push(Effect::Send(entry.conn));
        }
        // Queued on behalf of the batch's link: its span is recorded once per batch
        // (`Overlay::close_batch`).
        let before = entry.queued_len();
        let start = entry.pending.len();
        match frame {
            // A large frame in a lent buffer: only its head (the trace this node writes
            // itself into) is copied; the rest goes out from where it arrived.
            Relayed::Data(frame, Some(lent))
                if !DETOURED && frame.bytes().len() >= HELD_FRAME_BYTES_MIN =>
            {
                match C::relayed_head(frame) {
                    Some(head) if head < frame.bytes().len() => {
                        C::append_relayed_head(frame, id, head, &mut entry.pending);
                        let held = lent.hold(&frame.bytes()[head..]);
                        entry.held_bytes += held.len();
                        let at = entry.pending.len();
                        entry.held.push(Hole { at, held });
                    }
                    _ => C::append_relayed(frame, id, &mut entry.pending),
                }
            }
            Relayed::Data(frame, _) | Relayed::Lookup(frame) => {
                C::append_relayed(frame, id, &mut entry.pending)
            }
            Relayed::Verbatim(bytes) => entry.pending.extend_from_slice(bytes),
        }
        if DETOURED {
            C::mark_detoured(&mut entry.pending[start..]);
        }
        batch.queued += entry.queued_len() - before;
        if data {
            self.counters.relayed += 1;
            entry.packets_out += 1;
        }
        Ok(())
    }

    /// A keyed packet: delivered here if this node owns its key (the owner's checks are the
    /// sink's), otherwise relayed on the entry its key's route takes. A key that is not one
    /// of this overlay's (its width or value) counts the packet as corrupted.
    #[inline(never)]
    fn route_keyed(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        frame: &DataFrame<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let space = self.router.key_space();
        let Some(key) = space.read_key(C::key(frame)) else {
            let why = format!(
                "{:02x?} is not a key of this overlay ({} bytes below 2^{})",
                C::key(frame),
                space.key_bytes(),
                space.bits()
            );
            self.corrupted(effects, Corruption::Key(why));
            return Ok(());
        };
        match self.router.key_step(key) {
            chord::Step::Owner => self.deliver::<true>(effects, now, frame, batch),
            chord::Step::Deliver(index) | chord::Step::Forward(index) => self.relay_on(
                effects,
                index,
                |router| router.key_owner(key),
                Relayed::Data(frame, None),
                batch,
            ),
        }
    }

    /// The delivery path: the sink's checks (layout, CRC, the trace a route from the source
    /// to here: `Router::check_route`), the counters and histograms, and an ack when one is
    /// due (queued on behalf of the batch's link, as a relayed frame is).
    /// `KEYED`: a keyed frame at its key's owner (a key's route is its owner's).
    fn deliver<const KEYED: bool>(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        frame: &DataFrame<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        if !C::of_run(frame, self.shape) {
            self.stale::<KEYED>(frame);
            return Ok(());
        }
        // Plain matches rather than combinators: the checked fields stay in registers (a
        // `Result` of them built in memory and read back cost a store-forwarding stall).
        let delivered = if KEYED {
            match C::check_keyed_delivered(frame, self.shape) {
                Ok(delivered) => delivered,
                Err(corruption) => {
                    self.corrupted(effects, corruption);
                    return Ok(());
                }
            }
        } else {
            match C::check_delivered(frame, self.shape) {
                Ok(delivered) => delivered,
                Err(corruption) => {
                    self.sunk_from_source(frame.source());
                    self.corrupted(effects, corruption);
                    return Ok(());
                }
            }
        };
        // The source's ring position: `None` for a source that has left since it sent.
        let position = match self.router.check_delivered_route(
            delivered.source,
            delivered.relays,
            delivered.detoured,
            frame.trace(),
        ) {
            Ok(position) => position,
            Err(fault) => {
                self.wrong_trace::<KEYED>(effects, frame, delivered.source, fault);
                return Ok(());
            }
        };
        if !KEYED && let Some(position) = position {
            // The route check found the source's position: no second lookup.
            self.flow.on_sunk(position);
        }
        self.counters.received += 1;
        // The classic format has no send time.
        let latency = match delivered.sent {
            Some(sent) => {
                let latency = self.stamps.latency_ns(sent);
                if latency.is_none() {
                    self.latency_unknown(effects, now);
                }
                latency
            }
            None => None,
        };
        self.stats_since_poll.record(delivered.relays, latency);
        self.counters.sum_received = self
            .counters
            .sum_received
            .wrapping_add(i64::from(delivered.value));
        if let Some(position) = position
            && let Some(acked) = self.flow.on_delivered(position, frame.bytes().len())
        {
            let mut index = self
                .router
                .next_hop(delivered.source)
                .expect("source is another node");
            if self.entries[index].link != Link::Up
                && let Around::Entry(other) =
                    route_around::<C>(&self.router, &self.entries, delivered.source)
            {
                index = other;
            }
            if self.entries[index].link == Link::Up
                && self.admit(effects, batch, ACK_FRAME_BYTES)?
            {
                let (id, epoch) = (self.id, self.flow.epoch);
                let entry = &mut self.entries[index];
                if entry.pending.is_empty() {
                    effects.push(Effect::Send(entry.conn));
                }
                // On behalf of the batch's link, as a relayed frame (`Overlay::close_batch`).
                let before = entry.pending.len();
                C::append_ack(&mut entry.pending, id, delivered.source, epoch, acked);
                batch.queued += entry.pending.len() - before;
            }
        }
        Ok(())
    }

    /// A node-addressed packet that reached this node as its sink and is not received
    /// (stale, corrupted): counted as sunk from its source (`Flow::on_sunk`), if a member's.
    /// Out of line: a received one is counted with the position its route check found.
    #[cold]
    fn sunk_from_source(&mut self, source: NodeId) {
        if let Some(from) = self.router.position(source) {
            self.flow.on_sunk(from);
        }
    }

    /// A packet whose trace is no route from its source to this node (`fault` says which
    /// rule it breaks): the trace is copied out only to say so. `KEYED`: a keyed frame at its
    /// key's owner (not counted as sunk).
    #[cold]
    fn wrong_trace<const KEYED: bool>(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &DataFrame<'_, C>,
        origin: NodeId,
        fault: RouteFault,
    ) {
        if !KEYED {
            self.sunk_from_source(origin);
        }
        let corruption = Corruption::Trace {
            origin,
            trace: frame.trace().collect(),
            fault: fault.to_string(),
        };
        self.corrupted(effects, corruption);
    }

    /// A packet of an earlier run (a run ended by `stop`, or by a failure, while it was on
    /// its way): counted as stale and dropped. It is no outsider's doing and no link lost it,
    /// so the registry neither counts it as received nor blames anyone for it.
    /// `KEYED`: a keyed frame at its key's owner (not counted as sunk).
    #[cold]
    fn stale<const KEYED: bool>(&mut self, frame: &DataFrame<'_, C>) {
        // Not counted as sunk: its source counted it in an earlier run's packets originated.
        self.counters.stale += 1;
        tracing::debug!(
            "dropped a packet of an earlier run from node {} (stale)",
            frame.source()
        );
    }

    /// A packet whose send time could not be read as one time since this epoch began: it is
    /// received, its latency is not recorded, and the operator is told once per epoch.
    #[cold]
    fn latency_unknown(&mut self, effects: &mut Vec<Effect>, now: Nanos) {
        if std::mem::replace(&mut self.latency_unknown_said, true) {
            return;
        }
        let since = now.saturating_sub(self.flow.epoch_began_at);
        let line = if since >= SendStamp::WRAP_NS {
            let minutes = |ns: Nanos| ns as f64 / 60e9;
            format!(
                "latency not recorded for packets from now on in this run: it began here \
                 {:.1} minutes ago, longer than the send time's wrap ({:.1} minutes), so a \
                 packet could be a whole wrap older than its send time says",
                minutes(since),
                minutes(SendStamp::WRAP_NS)
            )
        } else {
            "latency not recorded for a packet whose send time lies before this run began \
             here (the source's clock is not this node's, as across machines)"
                .to_string()
        };
        self.problem(effects, line);
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
            // A node that left acknowledges what reached it before it did: nothing waits.
            None if self.others.contains_key(&from) => {
                tracing::debug!("ack from node {from}, which left")
            }
            None => self.problem(effects, format!("ack from unknown node {from}")),
        }
    }
}

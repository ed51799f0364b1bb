//! A mux's trunks (docs/ARCHITECTURE.md, "Trunks"): where each stands, how its bytes are read
//! into segments and streams, how its handshake and listeners bring it up, and how the
//! streams' bytes are taken onto it within the peer's credit.

use super::*;

/// A trunk whose peer returns no credit this long while bytes of ours wait for it is stalled
/// (its process stopped reading): closed, with every link on it. Three times the 10 s link
/// timeout links had before issue 16 (about twice [`LINK_TIMEOUT_SECS`] now) rather than one:
/// a trunk carries hundreds of links, and a loaded process of 500 nodes can spend seconds on
/// one batch of completions before its credits go out (with a 10 s rule, one 10,000-node run
/// on a loaded machine lost trunks 13 to 19 s into the run, its warnings not logged; a second
/// passed).
pub(super) const TRUNK_STALL_NS: Nanos = 30 * 1_000_000_000;
const _: () = assert!(TRUNK_STALL_NS > LINK_TIMEOUT_SECS * 1_000_000_000);

/// Where a trunk stands.
#[derive(Debug)]
pub(super) enum Stage {
    /// Dialed: the connection is not up yet.
    Dialing,
    /// The handshake runs.
    Handshaking(Handshake),
    /// This side is authenticated and sent its listeners; the peer's are to come.
    Listening,
    /// Both lists are in: it carries streams.
    Up,
}

#[derive(Debug)]
pub(super) struct Trunk {
    pub(super) stage: Stage,
    /// The listener this process dialed (`None`: the peer dialed).
    pub(super) dialed: Option<SocketAddr>,
    /// The peer's address of the connection (streams it opens come from there).
    pub(super) peer: SocketAddr,
    /// When a dialed trunk must be up.
    pub(super) deadline: Option<Nanos>,
    /// Connects waiting for it to come up.
    pub(super) waiting: Vec<ConnId>,
    /// The peer's listeners.
    pub(super) listeners: Vec<SocketAddr>,
    /// Segments to send before the streams' bytes (handshake, opens, a closed stream's last
    /// bytes and its close).
    pub(super) queued: Vec<u8>,
    /// Streams whose nodes have bytes pending.
    pub(super) wanting: Vec<ConnId>,
    /// `Effect::Send` asked for and the bytes not taken yet.
    pub(super) send_asked: bool,
    /// Open streams by number.
    pub(super) streams: HashMap<u32, ConnId>,
    /// The next stream this side opens (the connector's are odd, the acceptor's even).
    pub(super) next_stream: u32,
    /// The highest stream the peer opened.
    pub(super) peer_streams_last: u32,
    /// A DATA segment being received: its stream (`None`: closed here, its bytes are
    /// dropped) and the bytes still to come.
    pub(super) receiving: Option<(Option<ConnId>, usize)>,
    /// DATA bytes sent and not yet credited back by the peer: streams' bytes are taken only
    /// while it is below the mux's credit (`credit::TrunkCredit`).
    pub(super) outstanding: usize,
    /// Since when bytes have been outstanding without a credit coming back (`None`: none
    /// outstanding).
    pub(super) unanswered_since: Option<Nanos>,
    /// DATA bytes received since the last credit this side sent.
    pub(super) consumed: usize,
}

impl Trunk {
    pub(super) fn new(stage: Stage, dialed: Option<SocketAddr>, peer: SocketAddr) -> Trunk {
        Trunk {
            stage,
            dialed,
            peer,
            deadline: None,
            waiting: Vec::new(),
            listeners: Vec::new(),
            queued: Vec::new(),
            wanting: Vec::new(),
            send_asked: false,
            streams: HashMap::new(),
            next_stream: if dialed.is_some() { 1 } else { 2 },
            peer_streams_last: 0,
            receiving: None,
            outstanding: 0,
            unanswered_since: None,
            consumed: 0,
        }
    }

    /// Notes `bytes` of DATA sent at `now`.
    pub(super) fn sent_data(&mut self, now: Nanos, bytes: usize) {
        if bytes > 0 && self.outstanding == 0 {
            self.unanswered_since = Some(now);
        }
        self.outstanding += bytes;
    }

    /// When the trunk counts as stalled, unless a credit comes first.
    pub(super) fn stall_deadline(&self) -> Option<Nanos> {
        self.unanswered_since.map(|since| since + TRUNK_STALL_NS)
    }

    /// Whether the peer opens streams of this parity.
    pub(super) fn peer_opens(&self, stream: u32) -> bool {
        (stream % 2 == 1) != self.dialed.is_some()
    }

    /// Whether `stream` was ever open on this trunk (a segment for it may cross its close).
    pub(super) fn was_open(&self, stream: u32) -> bool {
        stream != 0
            && if self.peer_opens(stream) {
                stream <= self.peer_streams_last
            } else {
                stream < self.next_stream
            }
    }
}

impl<C: Codec> Mux<C> {
    /// The first bytes of an accepted connection: a trunk's magic makes it one (taken from its
    /// node), anything else leaves it to its node.
    pub(super) fn classify(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let Some(&(peer, local)) = self.unclassified.get(&conn) else {
            return self.group.on_received(now, conn, bytes);
        };
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return 0;
        }
        self.unclassified.remove(&conn);
        if !bytes.starts_with(MAGIC) {
            let consumed = self.group.on_received(now, conn, bytes);
            self.pump(now);
            return consumed;
        }
        self.group.forget(conn);
        let handshake = Handshake::accept(Binding {
            acceptor: auth::Role::Trunk,
            acceptor_addr: local,
        });
        self.trunks
            .insert(conn, Trunk::new(Stage::Handshaking(handshake), None, peer));
        if let Some(old) = self.strangers.admit(now, conn, peer.ip()) {
            self.trunk_failed(
                now,
                old,
                "pushed out by a newer trunk (too many wait to finish their handshake)",
            );
        }
        MAGIC.len() + self.trunk_bytes(now, conn, &bytes[MAGIC.len()..])
    }

    /// A trunk's bytes; the DATA bytes among them are credited back to the peer at once (they
    /// are consumed: a node always reads).
    pub(super) fn trunk_bytes(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let consumed = self.trunk_segments(now, conn, bytes);
        if let Some(trunk) = self.trunks.get_mut(&conn)
            && trunk.consumed > 0
        {
            segment::put_credit(&mut trunk.queued, std::mem::take(&mut trunk.consumed));
            self.ask_send(conn);
        }
        self.exit_when_delivered(now);
        consumed
    }

    /// A trunk's bytes: segments, a DATA segment's payload passed on as it arrives.
    fn trunk_segments(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let mut at = 0;
        loop {
            let Some(trunk) = self.trunks.get_mut(&conn) else {
                return bytes.len();
            };
            if let Some((target, remaining)) = trunk.receiving {
                let take = remaining.min(bytes.len() - at);
                if take == 0 {
                    return at;
                }
                trunk.receiving = (remaining > take).then_some((target, remaining - take));
                trunk.consumed += take;
                let part = &bytes[at..at + take];
                at += take;
                if let Some(target) = target {
                    self.deliver(now, target, part);
                }
                continue;
            }
            let rest = &bytes[at..];
            let Some(header) = segment::header(rest) else {
                return at;
            };
            let Some(max) = segment::payload_max(header.kind) else {
                self.trunk_failed(now, conn, &format!("segment kind {}", header.kind));
                return bytes.len();
            };
            if header.len > max {
                let why = format!("a segment of kind {} of {} bytes", header.kind, header.len);
                self.trunk_failed(now, conn, &why);
                return bytes.len();
            }
            if header.kind == DATA {
                let target = trunk.streams.get(&header.stream).copied();
                if !matches!(trunk.stage, Stage::Up)
                    || (target.is_none() && !trunk.was_open(header.stream))
                {
                    let why = format!("data for stream {} that is not open", header.stream);
                    self.trunk_failed(now, conn, &why);
                    return bytes.len();
                }
                trunk.receiving = (header.len > 0).then_some((target, header.len));
                at += HEADER_BYTES;
                continue;
            }
            if rest.len() < HEADER_BYTES + header.len {
                return at;
            }
            let payload = &rest[HEADER_BYTES..HEADER_BYTES + header.len];
            at += HEADER_BYTES + header.len;
            if let Err(why) = self.segment(now, conn, header, payload) {
                self.trunk_failed(now, conn, &why);
                return bytes.len();
            }
        }
    }

    /// One whole segment other than DATA.
    fn segment(
        &mut self,
        now: Nanos,
        conn: ConnId,
        header: segment::Header,
        payload: &[u8],
    ) -> Result<(), String> {
        let Some(trunk) = self.trunks.get_mut(&conn) else {
            return Ok(());
        };
        match (header.kind, &mut trunk.stage) {
            (CONTROL, Stage::Handshaking(handshake)) => {
                let message = match C::frame_len(payload) {
                    Ok(Some(len)) if len == payload.len() => C::decode_control(payload).ok(),
                    _ => None,
                }
                .ok_or("a handshake message that does not decode")?;
                match handshake.on_message(self.secret.as_ref(), Some(&message), &mut self.nonces) {
                    Outcome::Reply(reply) => {
                        put_control::<C>(&mut trunk.queued, &reply);
                    }
                    Outcome::Done(last) => {
                        if let Some(last) = last {
                            put_control::<C>(&mut trunk.queued, &last);
                        }
                        segment::put_listeners(&mut trunk.queued, &self.own_list);
                        trunk.stage = Stage::Listening;
                    }
                    Outcome::PassThrough => return Err("it did not follow the handshake".into()),
                    Outcome::Failed(failure) => {
                        if let Some(refusal) = failure.tell() {
                            put_control::<C>(&mut trunk.queued, &Control::Refused(refusal));
                        }
                        return Err(failure.describe(&format!("the trunk of {}", trunk.peer)));
                    }
                }
                self.ask_send(conn);
                Ok(())
            }
            (LISTENERS, Stage::Listening) => {
                let listeners = segment::listeners(payload)?;
                self.trunk_up(now, conn, listeners)
            }
            (OPEN, Stage::Up) => {
                let stream = header.stream;
                if !trunk.peer_opens(stream) || stream <= trunk.peer_streams_last {
                    return Err(format!("an open of stream {stream} out of turn"));
                }
                trunk.peer_streams_last = stream;
                let to = segment::open_addr(payload)?;
                let opened = trunk
                    .streams
                    .keys()
                    .filter(|&&s| trunk.peer_opens(s))
                    .count();
                let Some(&index) = self.own.get(&to).filter(|_| opened < TRUNK_STREAMS_MAX) else {
                    // No node of ours listens there (or too many): refused, as a connect.
                    segment::put_header(&mut trunk.queued, CLOSE, stream, 0);
                    self.ask_send(conn);
                    return Ok(());
                };
                let peer = trunk.peer;
                let accepted = self.virtual_conn(index);
                if let Some(trunk) = self.trunks.get_mut(&conn) {
                    trunk.streams.insert(stream, accepted);
                }
                self.links.insert(
                    accepted,
                    Link::Stream {
                        trunk: conn,
                        stream,
                        kept: Vec::new(),
                        wanting: false,
                        held: None,
                        held_at: 0,
                    },
                );
                self.group.on_accepted(now, accepted, peer, to);
                self.pump(now);
                Ok(())
            }
            (CREDIT, Stage::Up) => {
                let granted = segment::credit(payload)?;
                if granted == 0 || granted > trunk.outstanding {
                    return Err(format!(
                        "a credit of {granted} bytes where {} are outstanding",
                        trunk.outstanding
                    ));
                }
                trunk.outstanding -= granted;
                trunk.unanswered_since = (trunk.outstanding > 0).then_some(now);
                if !trunk.wanting.is_empty() {
                    self.ask_send(conn);
                }
                Ok(())
            }
            (CLOSE, Stage::Up) => {
                match trunk.streams.remove(&header.stream) {
                    Some(closed) => {
                        self.events
                            .push_back(Event::Closed(closed, CloseReason::PeerClosed));
                        self.pump(now);
                    }
                    None if trunk.was_open(header.stream) => {}
                    None => return Err(format!("a close of stream {}", header.stream)),
                }
                Ok(())
            }
            (kind, _) => Err(format!("segment kind {kind} out of turn")),
        }
    }

    /// Both sides' listeners are known: the trunk carries their links from now on.
    fn trunk_up(
        &mut self,
        now: Nanos,
        conn: ConnId,
        listeners: Vec<SocketAddr>,
    ) -> Result<(), String> {
        let up = self
            .trunks
            .values()
            .filter(|t| matches!(t.stage, Stage::Up))
            .count();
        if up >= TRUNKS_MAX {
            return Err(format!("this process already keeps {TRUNKS_MAX} trunks"));
        }
        self.strangers.leave(conn);
        let Some(trunk) = self.trunks.get_mut(&conn) else {
            return Ok(());
        };
        trunk.stage = Stage::Up;
        trunk.deadline = None;
        if let Some(dialed) = trunk.dialed
            && self.dialing.get(&dialed.ip()) == Some(&conn)
        {
            self.dialing.remove(&dialed.ip());
        }
        for &listener in &listeners {
            if !self.own.contains_key(&listener) {
                self.by_addr.entry(listener).or_insert(conn);
                self.plain.remove(&listener);
            }
        }
        trunk.listeners = listeners;
        let waiting = std::mem::take(&mut trunk.waiting);
        tracing::debug!(
            "trunk with {} up: {} listeners, {} links waiting",
            trunk.peer,
            trunk.listeners.len(),
            waiting.len()
        );
        for conn in waiting {
            if let Some(Link::Waiting { addr, .. }) = self.links.remove(&conn) {
                self.connect(now, conn, addr);
            }
        }
        Ok(())
    }

    /// A trunk is closed for what its peer did (said in a warning) or did not do in time.
    fn trunk_failed(&mut self, now: Nanos, conn: ConnId, why: &str) {
        let Some(trunk) = self.trunks.get_mut(&conn) else {
            return;
        };
        if let Some(held) = self.warnings.admit(now) {
            let more = match held {
                0 => String::new(),
                held => format!(" ({held} more closed connections since the last warning)"),
            };
            tracing::warn!("closing the trunk with {}: {why}{more}", trunk.peer);
        }
        // What it queued last (a refusal saying why) goes before the close.
        let last = std::mem::take(&mut trunk.queued);
        if !last.is_empty() {
            self.last_words.insert(conn, last);
        }
        self.effects.push(Effect::Close(conn));
        self.trunk_lost(now, conn, CloseReason::PeerClosed);
    }

    /// A trunk is gone: each link on it is closed for its node, and connects that waited
    /// for it go elsewhere (a trunk that never came up: on connections of their own).
    pub(super) fn trunk_lost(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        let Some(trunk) = self.trunks.remove(&conn) else {
            return;
        };
        self.strangers.leave(conn);
        for listener in &trunk.listeners {
            if self.by_addr.get(listener) == Some(&conn) {
                self.by_addr.remove(listener);
            }
        }
        if let Some(dialed) = trunk.dialed
            && !matches!(trunk.stage, Stage::Up)
        {
            if self.dialing.get(&dialed.ip()) == Some(&conn) {
                self.dialing.remove(&dialed.ip());
            }
            if self.plain.len() >= TRUNK_PLAIN_ADDRESSES_MAX {
                self.plain.clear();
            }
            self.plain.insert(dialed);
        }
        for (_, stream) in trunk.streams {
            // What the credit held back never left: its node routes around it.
            if let Some(Link::Stream { held, held_at, .. }) = self.links.get_mut(&stream)
                && let Some(held) = held.take()
            {
                let from = std::mem::take(held_at);
                if from < held.len() {
                    self.group.on_unsent(now, stream, &held[from..], 0);
                }
            }
            self.events.push_back(Event::Closed(stream, reason));
        }
        for waiting in trunk.waiting {
            if let Some(Link::Waiting { addr, .. }) = self.links.remove(&waiting) {
                self.connect(now, waiting, addr);
            }
        }
        self.pump(now);
    }

    /// Dialed trunks that did not come up in time are given up, and trunks whose peer stopped
    /// crediting what they sent are closed.
    pub(super) fn expire_trunks(&mut self, now: Nanos) {
        let stalled: Vec<ConnId> = self
            .trunks
            .iter()
            .filter(|(_, t)| t.stall_deadline().is_some_and(|deadline| deadline <= now))
            .map(|(&conn, _)| conn)
            .collect();
        for conn in stalled {
            let why = format!(
                "no credit for what it was sent within {} s (its process stopped reading)",
                TRUNK_STALL_NS / 1_000_000_000
            );
            self.trunk_failed(now, conn, &why);
        }
        while let Some(conn) = self.strangers.expired(now) {
            let why = format!(
                "no handshake within {} s of connecting",
                NODE_HANDSHAKE_TIMEOUT_NS / 1_000_000_000
            );
            self.trunk_failed(now, conn, &why);
        }
        let late: Vec<ConnId> = self
            .dialing
            .values()
            .copied()
            .filter(|conn| {
                self.trunks
                    .get(conn)
                    .and_then(|t| t.deadline)
                    .is_some_and(|deadline| deadline <= now)
            })
            .collect();
        for conn in late {
            self.trunk_failed(now, conn, "it did not come up in time");
        }
    }

    pub(super) fn trunk_connected(&mut self, conn: ConnId) {
        let secret = self.secret.clone();
        let Some(trunk) = self.trunks.get_mut(&conn) else {
            return;
        };
        let Some(dialed) = trunk.dialed else {
            return;
        };
        let binding = Binding {
            acceptor: auth::Role::Trunk,
            acceptor_addr: dialed,
        };
        let (handshake, hello) = Handshake::connect(secret.as_ref(), binding, &mut self.nonces);
        trunk.queued.extend_from_slice(MAGIC);
        put_control::<C>(&mut trunk.queued, &hello);
        if handshake.is_done() {
            segment::put_listeners(&mut trunk.queued, &self.own_list);
            trunk.stage = Stage::Listening;
        } else {
            trunk.stage = Stage::Handshaking(handshake);
        }
        self.ask_send(conn);
    }

    /// The trunk's bytes for the driver: its own segments, then the waiting streams' bytes, in
    /// the order they asked, as far as the trunk's credit goes (whole frames: the last may pass
    /// it by less than a frame). What a stream's batch had beyond the credit is held for it,
    /// and it stays first in line. With `holes` (the driver gathers), what streams held goes
    /// as holes naming it rather than copied into `buf`.
    pub(super) fn take_trunk_bytes(
        &mut self,
        conn: ConnId,
        buf: &mut Vec<u8>,
        mut holes: Option<&mut Vec<Hole>>,
    ) {
        let Some(trunk) = self.trunks.get_mut(&conn) else {
            return;
        };
        std::mem::swap(buf, &mut trunk.queued);
        trunk.send_asked = false;
        // The driver let go of what it sent before: held batches all sent become spares.
        for batch in std::mem::take(&mut self.let_go) {
            recycle(&mut self.spares, &mut self.let_go, batch);
        }
        let mut credit = self.credit.bytes().saturating_sub(trunk.outstanding);
        let mut wanting = std::mem::take(&mut trunk.wanting);
        let mut bytes = std::mem::take(&mut self.taken);
        let mut data = 0;
        let mut served = 0;
        for &stream_conn in &wanting {
            if credit == 0 {
                break;
            }
            let Some(Link::Stream {
                stream,
                wanting,
                held,
                held_at,
                ..
            }) = self.links.get_mut(&stream_conn)
            else {
                served += 1;
                continue;
            };
            let stream = *stream;
            if let Some(batch) = held {
                let from = *held_at;
                let take = frames_within::<C>(&batch[from..], credit);
                put_shared(buf, &mut holes, stream, batch, from..from + take);
                data += take;
                credit = credit.saturating_sub(take);
                if from + take < batch.len() {
                    *held_at += take;
                    break;
                }
                if let Some(batch) = held.take() {
                    recycle(&mut self.spares, &mut self.let_go, batch);
                    self.spares_at = self.now;
                }
                *held_at = 0;
                if credit == 0 {
                    // What its node queued meanwhile waits for the next credit, first in line.
                    if self.group.pending_len(stream_conn) == 0 {
                        *wanting = false;
                        served += 1;
                        // Served: no later take may look at its node's queue.
                        self.look_at_empty_queue(stream_conn, &mut bytes);
                    }
                    break;
                }
            }
            self.group.swap_outgoing(stream_conn, &mut bytes);
            let queued = bytes.len();
            if let Ok(Some(first)) = C::frame_len(&bytes) {
                self.credit.sample(first);
            }
            let take = frames_within::<C>(&bytes, credit);
            data += take;
            credit = credit.saturating_sub(take);
            let beyond = take < bytes.len();
            if beyond {
                if let Some(spare) = self.spares.pop() {
                    self.spares_at = self.now;
                    self.held_in_place += 1;
                    // Held where it is, not copied; its node queues into a spare (a batch's
                    // size: its queue does not grow anew by copies).
                    let batch = Arc::new(std::mem::replace(&mut bytes, spare));
                    put_shared(buf, &mut holes, stream, &batch, 0..take);
                    *held = Some(batch);
                    *held_at = take;
                } else {
                    segment::put_data(buf, stream, &bytes[..take]);
                    *held = Some(Arc::new(bytes[take..].to_vec()));
                    *held_at = 0;
                }
            } else if take > 0 {
                segment::put_data(buf, stream, &bytes[..take]);
            }
            bytes.clear();
            if self
                .grown
                .after_take(stream_conn, queued, bytes.capacity(), self.now)
            {
                // Grown in bursts that are over (this take found a quarter of it at most, and
                // none found more for a while): given back, as the driver gives back a
                // connection's send buffer, so that thousands of mostly idle streams do not
                // each keep their largest burst (docs/SCALE.md, "Memory with trunks").
                bytes = Vec::new();
            }
            // Its node gets its own buffer back, emptied: one buffer passed from stream to
            // stream would leave a busy link's queue growing anew from another's size.
            self.group.swap_outgoing(stream_conn, &mut bytes);
            if beyond {
                break;
            }
            *wanting = false;
            served += 1;
        }
        self.taken = bytes;
        wanting.drain(..served);
        if let Some(trunk) = self.trunks.get_mut(&conn) {
            trunk.sent_data(self.now, data);
            wanting.append(&mut trunk.wanting);
            trunk.wanting = wanting;
        }
    }

    /// Frees the grown queue buffers of streams whose bursts stopped a while ago and that got
    /// no take since (`grown.rs`); a stream with bytes waiting is left to its next take.
    pub(super) fn sweep_grown(&mut self, now: Nanos) {
        if !(self.spares.is_empty() && self.let_go.is_empty())
            && now.saturating_sub(self.spares_at) >= STREAM_BURST_GAP_NS
        {
            // No batch passed a credit for a while: the spares, and what would have become
            // spares once the driver let go, are freed (the last holder frees the latter).
            self.spares = Vec::new();
            self.let_go = Vec::new();
        }
        let mut bytes = std::mem::take(&mut self.taken);
        for stream in self.grown.due(now) {
            if matches!(self.links.get(&stream), Some(Link::Stream { .. }))
                && self.group.pending_len(stream) == 0
            {
                self.look_at_empty_queue(stream, &mut bytes);
            }
        }
        self.taken = bytes;
    }

    /// `stream`'s node queue, empty, looked at as by a take that found nothing: its buffer is
    /// freed if bursts that are over grew it (`grown.rs`). `scratch`: the mux's empty buffer,
    /// swapped in while the queue's is looked at.
    fn look_at_empty_queue(&mut self, stream: ConnId, scratch: &mut Vec<u8>) {
        self.group.swap_outgoing(stream, scratch);
        if self
            .grown
            .after_take(stream, 0, scratch.capacity(), self.now)
        {
            *scratch = Vec::new();
        }
        self.group.swap_outgoing(stream, scratch);
    }

    /// A trunk failed with `taken[sent..]` never handed to the kernel: each stream's part of
    /// it goes back to its node (`Machine::on_unsent`), which routes around what never left.
    pub(super) fn trunk_unsent(&mut self, now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        let Some(trunk) = self.trunks.get(&conn) else {
            return;
        };
        let mut at = if taken.starts_with(MAGIC) {
            MAGIC.len()
        } else {
            0
        };
        let mut unsent = Vec::new();
        while let Some(header) = segment::header(&taken[at..]) {
            let start = at + HEADER_BYTES;
            let end = (start + header.len).min(taken.len());
            if header.kind == DATA
                && end > sent
                && let Some(&stream) = trunk.streams.get(&header.stream)
            {
                unsent.push((stream, start, end));
            }
            at = end;
        }
        for (stream, start, end) in unsent {
            self.group
                .on_unsent(now, stream, &taken[start..end], sent.saturating_sub(start));
        }
        self.pump(now);
    }
}

/// Bytes `range` of a batch a stream held as a DATA segment of `stream`: named among `holes`
/// when the driver gathers (not copied), else copied into `buf`.
fn put_shared(
    buf: &mut Vec<u8>,
    holes: &mut Option<&mut Vec<Hole>>,
    stream: u32,
    batch: &Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
) {
    match holes {
        Some(holes) => {
            segment::put_header(buf, DATA, stream, range.len());
            holes.push(Hole {
                at: buf.len(),
                held: Held::shared(batch, range),
            });
        }
        None => segment::put_data(buf, stream, &batch[range]),
    }
}

/// A batch a stream held, all sent: its allocation becomes a spare once the driver let go of
/// it (else it waits in `let_go`; past the bound it is simply dropped, freed by the last
/// holder).
fn recycle(spares: &mut Vec<Vec<u8>>, let_go: &mut Vec<Arc<Vec<u8>>>, batch: Arc<Vec<u8>>) {
    match Arc::try_unwrap(batch) {
        Ok(mut spare) if spares.len() < SPARE_QUEUE_BUFFERS_MAX => {
            spare.clear();
            spares.push(spare);
        }
        Ok(_) => {}
        Err(batch) if let_go.len() < SPARE_QUEUE_BUFFERS_MAX => let_go.push(batch),
        Err(_) => {}
    }
}

/// How much of `bytes` (whole frames) goes within `limit`: all of it if it fits, else the
/// frames up to the one that reaches the limit, that one included.
pub(super) fn frames_within<C: Codec>(bytes: &[u8], limit: usize) -> usize {
    if bytes.len() <= limit {
        return bytes.len();
    }
    let mut at = 0;
    while at < limit {
        match C::frame_len(&bytes[at..]) {
            Ok(Some(len)) if len > 0 && at + len <= bytes.len() => at += len,
            // Not whole frames (a node queues nothing else): all of it, as before the credit.
            _ => return bytes.len(),
        }
    }
    at
}

/// Appends a handshake message as a CONTROL segment.
pub(super) fn put_control<C: Codec>(out: &mut Vec<u8>, message: &Control) {
    let mut frame = Vec::new();
    C::encode_control(message, &mut frame);
    segment::put_header(out, CONTROL, 0, frame.len());
    out.extend_from_slice(&frame);
}
